"""Job records for asynchronous extractions, kept in Redis or (single worker) in memory.

The model, rq-style (the record's rules are in ``jobrecord``):

* A job is a small JSON record keyed by ``job_id``: ``status``, ``stage``, ``progress``,
  ``message``, ``pages_done``/``pages_total``, and on failure ``error``/``error_code``.
  A completed job also has ``data`` (the extraction result, possibly several MB).
* Every write checks the status transition atomically against concurrent writers (Redis
  WATCH/MULTI; a lock in memory), so when two writers race to finish a job exactly one wins.
* In Redis the record sits at ``<prefix>:job:<id>`` and ``data`` at ``<prefix>:job:<id>:result``
  with the same TTL, so per-page progress writes never rewrite the large result.
* ``get_encoded`` hands back the result as the stored JSON bytes, so the API can send it on
  without decoding and re-encoding megabytes per poll; ``get`` decodes it.
* A Redis failure is always ``errors.JobStoreUnavailable``: never a false "not found".
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

import errors
from jobrecord import (
    ALLOWED_TRANSITIONS,
    ANNOTATIONS,
    TERMINAL,
    InvalidTransition,
    JobStatus,
    JobTtls,
    LeaseLost,
    Stage,
    apply_update,
    check_fence,
    check_transition,
    new_record,
    utc_iso,
)
from leases import Leases, MemoryLeases, RedisLeases

log = logging.getLogger(__name__)

# The record model is importable from here too: store users need one import.
__all__ = [
    "ALLOWED_TRANSITIONS",
    "ANNOTATIONS",
    "DEFAULT_PREFIX",
    "DEFAULT_TTLS",
    "TERMINAL",
    "EncodedJob",
    "InvalidTransition",
    "JobExists",
    "JobStatus",
    "JobStore",
    "JobTtls",
    "LeaseLost",
    "MemoryJobStore",
    "RedisJobStore",
    "Stage",
    "apply_update",
    "check_fence",
    "check_transition",
    "connect_redis",
    "is_valid_job_id",
    "job_key",
    "new_record",
    "open_job_store",
    "redact_url",
    "utc_iso",
]

DEFAULT_PREFIX = "pdfx"
DEFAULT_TTLS = JobTtls()
MAX_WATCH_RETRIES = 100
# How often a waiting long-poll looks at its stop event (a worker shutting down sets it).
STOP_CHECK_S = 0.5
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class JobExists(ValueError):
    """A job with this id is already stored."""


def job_key(prefix: str, job_id: str, part: str = "") -> str:
    """Return the Redis key of a job record (or of one of its parts, e.g. "result")."""
    key = f"{prefix}:job:{job_id}"
    return f"{key}:{part}" if part else key


def is_valid_job_id(job_id: Any) -> bool:
    """Tell whether ``job_id`` can name a job (no ':' so it cannot reach another key)."""
    return isinstance(job_id, str) and bool(_JOB_ID.match(job_id))


def _split_data(record: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Separate the (possibly large) result ``data`` from the small record."""
    small = dict(record)
    return small, small.pop("data", None)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class EncodedJob(NamedTuple):
    """A job record without ``data``, and its result as the stored JSON (UTF-8), if any."""

    record: dict[str, Any]
    data_json: bytes | None


Builder = Callable[[dict[str, Any] | None], dict[str, Any]]


class JobStore(ABC):
    """Where job records live; the same contract in Redis and in memory."""

    kind: str
    leases: Leases

    def __init__(self, ttls: JobTtls, clock: Callable[[], float]) -> None:
        self.ttls = ttls
        self._clock = clock

    def create(self, job: dict[str, Any]) -> dict[str, Any]:
        """Store a new job (status defaults to queued) and return its record."""
        job_id = job.get("job_id")
        if not is_valid_job_id(job_id):
            raise ValueError(f"invalid job_id: {job_id!r}")

        def build(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is not None:
                raise JobExists(f"job {job_id} already exists")
            return new_record(job, self._clock(), self.ttls)

        return self._transact(job_id, build)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """Return the full record (with ``data`` when completed), or None if unknown/expired."""
        job = self.get_encoded(job_id)
        if job is None:
            return None
        if job.data_json is not None:
            job.record["data"] = json.loads(job.data_json)
        return job.record

    def get_encoded(self, job_id: str) -> EncodedJob | None:
        """Return the record and its result still as JSON bytes, or None if unknown/expired."""
        return self._read_encoded(job_id) if is_valid_job_id(job_id) else None

    def update(self, job_id: str, fence: str | None = None, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the job, enforcing fence and transitions; return the record."""
        if not is_valid_job_id(job_id):
            raise errors.JobNotFound()

        def build(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is None:
                raise errors.JobNotFound()
            return apply_update(current, fields, self._clock(), self.ttls, fence)

        return self._transact(job_id, build)

    def complete(
        self, job_id: str, data: dict[str, Any], fence: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Mark the job completed with its result ``data``."""
        done = {"status": JobStatus.COMPLETED, "stage": Stage.DONE, "progress": 100}
        return self.update(job_id, fence, **{**fields, **done, "data": data})

    def fail(
        self, job_id: str, code: str, message: str, fence: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Mark the job failed with a stable error ``code`` and a readable ``message``."""
        failed = {"status": JobStatus.FAILED, "stage": Stage.FAILED}
        body = {**fields, **failed, "error": message, "error_code": code}
        return self.update(job_id, fence, **body)

    def delete(self, job_id: str) -> bool:
        """Remove the job and its tombstone (a purge); return whether it existed."""
        return self._remove(job_id) if is_valid_job_id(job_id) else False

    def wait_ended(
        self, job_id: str, timeout_s: float, stop: threading.Event | None = None
    ) -> None:
        """Return once the job has ended (completed, failed or gone), ``stop`` is set, or
        after ``timeout_s``."""
        if timeout_s > 0 and is_valid_job_id(job_id):
            self._wait_ended(job_id, timeout_s, stop or threading.Event())

    def was_expired(self, job_id: str, owner: str | None = None) -> bool:
        """Tell whether an unknown id named a job of ``owner`` that existed and has expired."""
        return is_valid_job_id(job_id) and self._tombstone(job_id) == (owner or "")

    @abstractmethod
    def ping(self) -> bool:
        """Tell whether the store answers; never raises."""

    @abstractmethod
    def close(self) -> None:
        """Release any connections."""

    @abstractmethod
    def _read_encoded(self, job_id: str) -> EncodedJob | None: ...

    @abstractmethod
    def _transact(self, job_id: str, build: Builder) -> dict[str, Any]:
        """Atomically read the record (None if absent), build the new one, and store it."""

    @abstractmethod
    def _remove(self, job_id: str) -> bool: ...

    @abstractmethod
    def _wait_ended(self, job_id: str, timeout_s: float, stop: threading.Event) -> None: ...

    @abstractmethod
    def _tombstone(self, job_id: str) -> str | None:
        """Return the owner ("" for none) kept after the job expired, or None."""


class _Entry(NamedTuple):
    record: str
    data: bytes | None
    expires: float


class MemoryJobStore(JobStore):
    """Jobs in this process's memory: for one worker, tests, and Redis outages at start."""

    kind = "memory"

    def __init__(
        self, ttls: JobTtls = DEFAULT_TTLS, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(ttls, clock)
        self.leases = MemoryLeases()
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)  # notified when a job ends or goes
        # Stored as JSON text, like Redis: callers never share mutable state with the store.
        self._jobs: dict[str, _Entry] = {}
        self._tombs: dict[str, tuple[float, str]] = {}

    def create(self, job: dict[str, Any]) -> dict[str, Any]:
        """Store a new job, first dropping expired ones so memory does not grow forever."""
        self._sweep()
        return super().create(job)

    def ping(self) -> bool:
        """Tell whether the store answers (memory always does)."""
        return True

    def close(self) -> None:
        """Release any connections (memory holds none)."""

    def _read_encoded(self, job_id: str) -> EncodedJob | None:
        with self._lock:
            entry = self._live(job_id)
        return None if entry is None else EncodedJob(json.loads(entry.record), entry.data)

    def _transact(self, job_id: str, build: Builder) -> dict[str, Any]:
        with self._lock:
            entry = self._live(job_id)
            record = build(None if entry is None else json.loads(entry.record))
            small, data = _split_data(record)
            kept = entry.data if entry is not None else None
            data_json = kept if data is None else _dumps(data).encode()
            expires = self._clock() + self.ttls.ttl_for(record["status"])
            self._jobs[job_id] = _Entry(_dumps(small), data_json, expires)
            self._tombs[job_id] = (expires + self.ttls.tombstone, record.get("owner") or "")
            if JobStatus(record["status"]) in TERMINAL:
                self._ended.notify_all()
        return record

    def _remove(self, job_id: str) -> bool:
        with self._lock:
            self._tombs.pop(job_id, None)
            if self._live(job_id) is None:
                return False
            del self._jobs[job_id]
            self._ended.notify_all()
            return True

    def _wait_ended(self, job_id: str, timeout_s: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + timeout_s
        with self._ended:
            while not (stop.is_set() or self._has_ended(job_id)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._ended.wait(min(remaining, STOP_CHECK_S))

    def _has_ended(self, job_id: str) -> bool:
        """Tell whether the job is gone or terminal (caller holds the lock)."""
        entry = self._live(job_id)
        return entry is None or JobStatus(json.loads(entry.record)["status"]) in TERMINAL

    def _tombstone(self, job_id: str) -> str | None:
        with self._lock:
            until, owner = self._tombs.get(job_id, (0.0, ""))
            return owner if self._live(job_id) is None and until > self._clock() else None

    def _live(self, job_id: str) -> _Entry | None:
        """Return the unexpired entry, dropping it if it has expired (caller holds the lock)."""
        entry = self._jobs.get(job_id)
        if entry is not None and entry.expires <= self._clock():
            del self._jobs[job_id]
            return None
        return entry

    def _sweep(self) -> None:
        with self._lock:
            now = self._clock()
            for job_id in [k for k, e in self._jobs.items() if e.expires <= now]:
                del self._jobs[job_id]
            for job_id in [k for k, t in self._tombs.items() if t[0] <= now]:
                del self._tombs[job_id]


@contextmanager
def _redis_errors(action: str):
    """Turn any Redis failure into JobStoreUnavailable."""
    try:
        yield
    except redis.RedisError as exc:
        log.warning("job store: Redis failed during %s: %s", action, exc)
        raise errors.JobStoreUnavailable() from exc


class RedisJobStore(JobStore):
    """Jobs in Redis, shared by every worker; each key carries its status's TTL."""

    kind = "redis"

    def __init__(
        self, client: redis.Redis, ttls: JobTtls = DEFAULT_TTLS, prefix: str = DEFAULT_PREFIX
    ) -> None:
        super().__init__(ttls, time.time)
        self.client = client
        self.prefix = prefix
        self.leases = RedisLeases(client, prefix)

    def ping(self) -> bool:
        """Tell whether Redis answers; never raises."""
        try:
            return bool(self.client.ping())
        except (redis.RedisError, OSError) as exc:
            log.warning("job store: Redis ping failed: %s", exc)
            return False

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def _keys(self, job_id: str) -> tuple[str, str]:
        return job_key(self.prefix, job_id), job_key(self.prefix, job_id, "result")

    def _tomb_key(self, job_id: str) -> str:
        return f"{self.prefix}:tomb:{job_id}"

    def _ended_channel(self, job_id: str) -> str:
        return job_key(self.prefix, job_id, "ended")

    def _read_encoded(self, job_id: str) -> EncodedJob | None:
        with _redis_errors("get"):
            raw, raw_data = self.client.mget(self._keys(job_id))
        if raw is None:
            return None
        record = json.loads(raw)
        if raw_data is None and record["status"] == JobStatus.COMPLETED.value:
            return None  # the result expired a moment before its record: the job is gone
        return EncodedJob(record, raw_data)

    def _transact(self, job_id: str, build: Builder) -> dict[str, Any]:
        with _redis_errors("write"), self.client.pipeline() as pipe:
            for _ in range(MAX_WATCH_RETRIES):
                try:
                    return self._attempt(pipe, job_id, build)
                except redis.WatchError:
                    continue  # another writer got in first: re-read and re-check
        log.error("job store: gave up writing job %s after %d conflicts", job_id, MAX_WATCH_RETRIES)
        raise errors.JobStoreUnavailable()

    def _attempt(self, pipe: Any, job_id: str, build: Builder) -> dict[str, Any]:
        """Run one optimistic WATCH/MULTI round; raises WatchError if the record changed."""
        key, result_key = self._keys(job_id)
        pipe.watch(key)
        raw = pipe.get(key)
        record = build(None if raw is None else json.loads(raw))
        small, data = _split_data(record)
        ttl = self.ttls.ttl_for(record["status"])
        pipe.multi()
        pipe.set(key, _dumps(small), ex=ttl)
        owner = record.get("owner") or ""
        pipe.set(self._tomb_key(job_id), owner, ex=ttl + self.ttls.tombstone)
        if data is None:
            pipe.expire(result_key, ttl)
        else:
            pipe.set(result_key, _dumps(data), ex=ttl)
        if JobStatus(record["status"]) in TERMINAL:  # published with the write, never before it
            pipe.publish(self._ended_channel(job_id), record["status"])
        pipe.execute()
        return record

    def _remove(self, job_id: str) -> bool:
        key, result_key = self._keys(job_id)
        tomb = self._tomb_key(job_id)
        with _redis_errors("delete"), self.client.pipeline() as pipe:
            pipe.delete(key).delete(result_key).delete(tomb)
            removed = pipe.publish(self._ended_channel(job_id), "deleted").execute()[0]
        return bool(removed)

    def _wait_ended(self, job_id: str, timeout_s: float, stop: threading.Event) -> None:
        # Subscribe first, then look: an end written in between is seen either way.
        deadline = time.monotonic() + timeout_s
        with _redis_errors("wait"), self.client.pubsub(ignore_subscribe_messages=True) as sub:
            sub.subscribe(self._ended_channel(job_id))
            if self._has_ended(job_id):
                return
            while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
                if sub.get_message(timeout=min(remaining, STOP_CHECK_S)) is not None:
                    return

    def _has_ended(self, job_id: str) -> bool:
        raw = self.client.get(job_key(self.prefix, job_id))
        return raw is None or JobStatus(json.loads(raw)["status"]) in TERMINAL

    def _tombstone(self, job_id: str) -> str | None:
        with _redis_errors("tombstone"):
            value = self.client.get(self._tomb_key(job_id))
        return None if value is None else value.decode()


def connect_redis(url: str) -> redis.Redis:
    """Make a Redis client that fails fast and reconnects by itself."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
        # Bounded: the default (10 retries) could hold a request for close to a minute.
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
    )


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to log)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_job_store(settings: Any) -> tuple[JobStore, str]:
    """Open the configured store; return it with "connected", "not_configured" or "disconnected"."""
    ttls = JobTtls.from_settings(settings)
    if not settings.redis_url:
        log.warning("REDIS_URL is not set: jobs are kept in memory (run a single worker)")
        return MemoryJobStore(ttls), "not_configured"
    store = RedisJobStore(connect_redis(settings.redis_url), ttls, settings.redis_key_prefix)
    if store.ping():
        return store, "connected"
    log.error(
        "Redis at %s is unreachable: jobs are kept in memory until restart",
        redact_url(settings.redis_url),
    )
    store.close()
    return MemoryJobStore(ttls), "disconnected"
