"""gunicorn settings: workers, threads, timeouts and logs, from the environment."""

import logging
import multiprocessing
import os

from config import Settings

_settings = Settings()
_redis = bool(_settings.redis_url)
_cores = multiprocessing.cpu_count()


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
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
# Not used here, and several instances on one host would fight over its one path.
control_socket_disable = True


def on_starting(server):
    """Say which store and how many workers this run uses."""
    if not _redis and os.environ.get("WEB_CONCURRENCY", "1") not in ("", "1"):
        logging.getLogger("gunicorn.error").warning(
            "REDIS_URL is not set: running 1 worker (the in-memory job store is per process)"
        )
