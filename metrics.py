"""Prometheus metrics, named ``pdf_extractor_*``, as plain functions the other modules call.

Under gunicorn every worker is its own process, so prometheus_client runs in multiprocess
mode: each process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (set by
gunicorn.conf.py before any worker starts) and one scrape adds them all up. Gauges about
live work use the ``livesum`` mode, so a dead worker's queue stops counting once gunicorn
marks it dead. Without that variable (tests, the CLI) the default in-process registry is used.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
NO_ERROR = "none"
JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
# The memory gauge holds a last value that a scrape reads every 15 s or so: reading /proc
# (~14 us of syscalls) on each of ~100 polls a second made every poll slower and no scrape
# more accurate. A second is far fresher than any scrape interval.
MEMORY_REFRESH_S = 1.0

JOBS_SUBMITTED = Counter("pdf_extractor_jobs_submitted", "Jobs accepted and queued.")
JOBS = Counter(
    "pdf_extractor_jobs",
    "Jobs that reached a final status, by status and error_code (none when completed).",
    ["status", "error_code"],
)
JOB_SECONDS = Histogram(
    "pdf_extractor_job_duration_seconds",
    "Time from a job's start on a worker thread to its final status.",
    ["status"],
    buckets=JOB_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "pdf_extractor_stage_duration_seconds",
    "Time a job spent in each pipeline stage.",
    ["stage"],
    buckets=JOB_BUCKETS,
)
PAGES = Counter("pdf_extractor_pages_processed", "Pages extracted by completed jobs.")
BYTES = Counter(
    "pdf_extractor_bytes_processed", "Upload bytes of jobs that reached a final status."
)
QUEUE_DEPTH = Gauge(
    "pdf_extractor_queue_depth", "Jobs queued, not yet started.", multiprocess_mode="livesum"
)
RUNNING = Gauge("pdf_extractor_jobs_running", "Jobs running now.", multiprocess_mode="livesum")
REDIS_UP = Gauge(
    "pdf_extractor_redis_up",
    "1 when the Redis job store answered its last check, 0 when not (absent without Redis).",
    multiprocess_mode="livemostrecent",
)
REQUESTS = Counter(
    "pdf_extractor_http_requests", "HTTP requests answered.", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "pdf_extractor_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["route"],
    buckets=REQUEST_BUCKETS,
)
RATE_LIMITED = Counter("pdf_extractor_rate_limited", "Requests refused with 429.", ["route"])
REJECTED = Counter(
    "pdf_extractor_rejected_requests",
    "Requests refused with a 4xx, by error_code.",
    ["error_code"],
)
NHOST_PUSHES = Counter("pdf_extractor_nhost_pushes", "Pushes to Nhost by outcome.", ["outcome"])
SECURITY_EVENTS = Counter(
    "pdf_extractor_security_events", "Security events logged, by event name.", ["event"]
)
WORKER_MEMORY = Gauge(
    "pdf_extractor_worker_resident_memory_bytes",
    "Resident memory of each live worker process (its parse children not included).",
    multiprocess_mode="liveall",
)


def record_job_submitted() -> None:
    """Count a job accepted and put on a worker's queue."""
    JOBS_SUBMITTED.inc()
    QUEUE_DEPTH.inc()


def record_job_started() -> None:
    """Move a job from queued to running."""
    QUEUE_DEPTH.dec()
    RUNNING.inc()


def record_job_ended() -> None:
    """Take a job off the running gauge (whatever its outcome)."""
    RUNNING.dec()
    record_memory()


def record_job_finished(
    status: str, error_code: str | None, seconds: float, pages: int = 0, size: int = 0
) -> None:
    """Count a job's final status with its duration, pages and bytes."""
    JOBS.labels(status, error_code or NO_ERROR).inc()
    JOB_SECONDS.labels(status).observe(seconds)
    PAGES.inc(pages)
    BYTES.inc(size)


def record_stage(stage: str, seconds: float) -> None:
    """Observe how long a job spent in one stage."""
    STAGE_SECONDS.labels(stage).observe(seconds)


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count an answered request; 429s also count as rate-limited."""
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(route).observe(seconds)
    if status == 429:
        RATE_LIMITED.labels(route).inc()


def record_rejected(error_code: str) -> None:
    """Count a request refused with a 4xx error code."""
    REJECTED.labels(error_code).inc()


def record_redis_up(up: bool | None) -> None:
    """Set the Redis gauge (None: Redis not configured, reported as 0 only if ever set)."""
    if up is not None:
        REDIS_UP.set(1 if up else 0)


def record_nhost_push(outcome: str) -> None:
    """Count an Nhost push by outcome (stored, failed or skipped)."""
    NHOST_PUSHES.labels(outcome).inc()


def record_security_event(name: str) -> None:
    """Count a security event by name."""
    SECURITY_EVENTS.labels(name).inc()


def record_memory() -> None:
    """Set this process's resident memory gauge from /proc (no-op where /proc is absent)."""
    rss = resident_memory_bytes()
    if rss:
        WORKER_MEMORY.set(rss)


_memory_read_at = float("-inf")


def refresh_memory(now: float | None = None) -> None:
    """Set the memory gauge unless it was set in the last MEMORY_REFRESH_S (called per request)."""
    global _memory_read_at
    now = time.monotonic() if now is None else now
    if now - _memory_read_at < MEMORY_REFRESH_S:
        return
    _memory_read_at = now
    record_memory()


def resident_memory_bytes(pid: int | str = "self") -> int:
    """Return a process's resident set size in bytes (0 when unknown)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def multiprocess_mode() -> bool:
    """Tell whether values are shared through PROMETHEUS_MULTIPROC_DIR."""
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> bytes:
    """Return every process's metrics in the Prometheus text format."""
    if not multiprocess_mode():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn's child_exit hook calls this)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)
