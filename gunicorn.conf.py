"""gunicorn settings: workers, threads, timeouts, logs and metrics, from the environment."""

import logging
import multiprocessing
import os
import signal
import tempfile
from pathlib import Path

from config import Settings

_settings = Settings()
_redis = bool(_settings.redis_url)
_cores = multiprocessing.cpu_count()
# prometheus_client picks multiprocess mode when it is first imported, so the directory must
# be in the environment before anything imports it; the workers inherit it.
_metrics_dir = Path(
    _settings.prometheus_multiproc_dir
    or Path(tempfile.gettempdir()) / f"pdfx-metrics-{os.getpid()}"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)


def _reset_metrics_dir() -> None:
    # Values left by an earlier run would be added to this run's totals.
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in _metrics_dir.glob("*.db"):
        stale.unlink()


# Before the imports below: metrics.py creates its value files as it is imported.
_reset_metrics_dir()

import logs  # noqa: E402  (needs PROMETHEUS_MULTIPROC_DIR set first)
import metrics  # noqa: E402


def _workers() -> int:
    # The memory store lives in one process: with several workers a poll would land on
    # a worker that never saw the job. So without Redis there is exactly one worker.
    if not _redis:
        return 1
    return int(os.environ.get("WEB_CONCURRENCY") or min(2 * _cores + 1, 4))


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = _workers()
threads = int(os.environ.get("THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# In JSON mode the app logs every request itself (with request_id, route, duration), so
# gunicorn's plain-text access line would only duplicate it.
accesslog = "-" if _settings.log_format == "text" else None
errorlog = "-"
loglevel = _settings.log_level.lower()
# Not used here, and several instances on one host would fight over its one path.
control_socket_disable = True


def on_starting(server):
    """Format gunicorn's own log like the app's; say how many workers run."""
    for handler in server.log.error_log.handlers:
        handler.setFormatter(logs.make_formatter(_settings.log_format))
    if not _redis and os.environ.get("WEB_CONCURRENCY", "1") not in ("", "1"):
        logging.getLogger("gunicorn.error").warning(
            "REDIS_URL is not set: running 1 worker (the in-memory job store is per process)"
        )


def post_worker_init(worker):
    """Start the parse zygote; on SIGTERM, answer the worker's long-polls at once; log that
    the worker is ready."""
    graceful_stop = signal.getsignal(signal.SIGTERM)  # gunicorn's: stop accepting, finish
    services = _services(worker)

    def stop_long_polls_then_stop(signum, frame):
        # gunicorn waits up to the graceful timeout for open requests before worker_exit
        # drains the jobs: a long-poll would spend that time and the drain would be killed.
        if services is not None:
            services.jobs.stop_waits()
        graceful_stop(signum, frame)

    signal.signal(signal.SIGTERM, stop_long_polls_then_stop)
    if services is not None:
        # Booted now: the zygote's imports (~0.17 s of CPU, in its own process) no longer
        # slow the worker's boot, and the first job no longer waits for them.
        services.jobs.warm_up()
    worker.log.info("worker %s ready", worker.pid)


def _services(worker):
    """Return the worker's app services (None before its app is built)."""
    app = getattr(worker, "wsgi", None)
    return getattr(app, "extensions", {}).get("pdfx")


def child_exit(server, worker):
    """Drop a dead worker's live gauges so queue depth and running jobs stay true."""
    metrics.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics files of this run."""
    for path in _metrics_dir.glob("*.db"):
        path.unlink(missing_ok=True)


# Seconds kept back from the graceful timeout to hand unfinished jobs back before SIGKILL.
DRAIN_MARGIN_S = 2.0


def worker_exit(server, worker):
    """On a worker's orderly exit (SIGTERM): finish jobs within the grace, hand the rest back."""
    if os.getpid() != worker.pid:
        return  # the master also calls this for workers that vanished: nothing to drain there
    services = _services(worker)
    if services is not None:
        services.jobs.drain(max(0.0, graceful_timeout - DRAIN_MARGIN_S))
