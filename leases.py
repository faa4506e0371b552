"""Who runs which job: leases, cancel requests, the reaper lock, idempotency keys.

The job record (``jobstore``) holds the fencing token (``lease_token``); this module holds
the *liveness* side: a short-TTL lease key per running or queued job, renewed by the owning
worker's heartbeat. A missing lease key means the owner stopped heartbeating. Redis gives
these guarantees across gunicorn workers; ``MemoryLeases`` gives the same contract inside
one process (the memory store serves a single worker).

Keys (Redis): ``<prefix>:lease:<id>`` (token, PX ttl), ``<prefix>:active`` (set of job ids
not yet seen terminal), ``<prefix>:cancel:<id>`` (cancel request), ``<prefix>:lock:<name>``
(a named lock with a TTL), ``<prefix>:idem:<digest>`` and ``<prefix>:dedupe:<digest>``.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import contextmanager

import redis

import errors

# Renew if the key is absent (it expired while Redis was away) or still ours; refuse otherwise.
_RENEW = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
CANCEL_TTL_S = 3600


@contextmanager
def _redis_errors():
    try:
        yield
    except redis.RedisError as exc:
        raise errors.JobStoreUnavailable() from exc


class Leases(ABC):
    """The coordination contract every job store offers."""

    @abstractmethod
    def acquire(self, job_id: str, token: str, ttl_s: float) -> None:
        """Set the job's lease to ``token`` (overwriting any other holder)."""

    @abstractmethod
    def renew(self, job_id: str, token: str, ttl_s: float) -> bool:
        """Extend our lease (restoring it if it lapsed); False if another token holds it."""

    @abstractmethod
    def release(self, job_id: str, token: str) -> None:
        """Drop the lease if it is still ours."""

    @abstractmethod
    def holders(self, job_ids: list[str]) -> list[str | None]:
        """Return the current lease token of each job (None where it lapsed)."""

    @abstractmethod
    def track(self, job_id: str) -> None:
        """Add a job to the set the reaper watches."""

    @abstractmethod
    def untrack(self, job_id: str) -> None:
        """Remove a job from the reaper's set."""

    @abstractmethod
    def tracked(self) -> list[str]:
        """Return the ids the reaper watches."""

    @abstractmethod
    def request_cancel(self, job_id: str) -> None:
        """Record that a client cancelled the job."""

    @abstractmethod
    def cancelled(self, job_ids: list[str]) -> list[str]:
        """Return those of ``job_ids`` with a cancel request."""

    @abstractmethod
    def try_lock(self, name: str, ttl_s: float) -> bool:
        """Take a named lock for ``ttl_s`` unless someone holds it."""

    @abstractmethod
    def claim(self, kind: str, digest: str, value: str, ttl_s: int) -> str | None:
        """Store ``value`` under (kind, digest) unless present; return the present value."""

    @abstractmethod
    def put(self, kind: str, digest: str, value: str, ttl_s: int) -> None:
        """Store ``value`` under (kind, digest), replacing any."""

    @abstractmethod
    def lookup(self, kind: str, digest: str) -> str | None:
        """Return the value under (kind, digest), or None."""


class RedisLeases(Leases):
    """Leases in Redis, shared by every worker that uses the same prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def acquire(self, job_id: str, token: str, ttl_s: float) -> None:
        """Set the job's lease to ``token``."""
        with _redis_errors():
            self.client.set(self._key("lease", job_id), token, px=int(ttl_s * 1000))

    def renew(self, job_id: str, token: str, ttl_s: float) -> bool:
        """Extend our lease; False if another token holds it."""
        with _redis_errors():
            key = self._key("lease", job_id)
            return bool(self._renew(keys=[key], args=[token, int(ttl_s * 1000)]))

    def release(self, job_id: str, token: str) -> None:
        """Drop the lease if it is still ours."""
        with _redis_errors():
            self._release(keys=[self._key("lease", job_id)], args=[token])

    def holders(self, job_ids: list[str]) -> list[str | None]:
        """Return each job's lease token (None where it lapsed)."""
        if not job_ids:
            return []
        with _redis_errors():
            values = self.client.mget([self._key("lease", j) for j in job_ids])
        return [None if v is None else v.decode() for v in values]

    def track(self, job_id: str) -> None:
        """Add a job to the reaper's set."""
        with _redis_errors():
            self.client.sadd(self._key("active"), job_id)

    def untrack(self, job_id: str) -> None:
        """Remove a job from the reaper's set."""
        with _redis_errors():
            self.client.srem(self._key("active"), job_id)

    def tracked(self) -> list[str]:
        """Return the ids the reaper watches."""
        with _redis_errors():
            return sorted(v.decode() for v in self.client.smembers(self._key("active")))

    def request_cancel(self, job_id: str) -> None:
        """Record a cancel request (kept an hour: the owner sees it within a tick)."""
        with _redis_errors():
            self.client.set(self._key("cancel", job_id), "1", ex=CANCEL_TTL_S)

    def cancelled(self, job_ids: list[str]) -> list[str]:
        """Return those of ``job_ids`` with a cancel request."""
        if not job_ids:
            return []
        with _redis_errors():
            values = self.client.mget([self._key("cancel", j) for j in job_ids])
        return [j for j, v in zip(job_ids, values, strict=True) if v is not None]

    def try_lock(self, name: str, ttl_s: float) -> bool:
        """Take a named lock unless held."""
        with _redis_errors():
            return bool(
                self.client.set(self._key("lock", name), "1", nx=True, px=int(ttl_s * 1000))
            )

    def claim(self, kind: str, digest: str, value: str, ttl_s: int) -> str | None:
        """Store ``value`` unless present; return the present value."""
        key = self._key(kind, digest)
        with _redis_errors():
            if self.client.set(key, value, nx=True, ex=ttl_s):
                return None
            present = self.client.get(key)
        return None if present is None else present.decode()

    def put(self, kind: str, digest: str, value: str, ttl_s: int) -> None:
        """Store ``value``, replacing any."""
        with _redis_errors():
            self.client.set(self._key(kind, digest), value, ex=ttl_s)

    def lookup(self, kind: str, digest: str) -> str | None:
        """Return the stored value, or None."""
        with _redis_errors():
            value = self.client.get(self._key(kind, digest))
        return None if value is None else value.decode()


class MemoryLeases(Leases):
    """The same contract in one process's memory (single worker)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], tuple[str, float]] = {}
        self._active: set[str] = set()

    def _get(self, kind: str, name: str) -> str | None:
        entry = self._values.get((kind, name))
        if entry is None or entry[1] <= self._clock():
            self._values.pop((kind, name), None)
            return None
        return entry[0]

    def _set(self, kind: str, name: str, value: str, ttl_s: float) -> None:
        self._values[(kind, name)] = (value, self._clock() + ttl_s)

    def acquire(self, job_id: str, token: str, ttl_s: float) -> None:
        """Set the job's lease to ``token``."""
        with self._lock:
            self._set("lease", job_id, token, ttl_s)

    def renew(self, job_id: str, token: str, ttl_s: float) -> bool:
        """Extend our lease; False if another token holds it."""
        with self._lock:
            if self._get("lease", job_id) not in (None, token):
                return False
            self._set("lease", job_id, token, ttl_s)
            return True

    def release(self, job_id: str, token: str) -> None:
        """Drop the lease if it is still ours."""
        with self._lock:
            if self._get("lease", job_id) == token:
                del self._values[("lease", job_id)]

    def holders(self, job_ids: list[str]) -> list[str | None]:
        """Return each job's lease token (None where it lapsed)."""
        with self._lock:
            return [self._get("lease", j) for j in job_ids]

    def track(self, job_id: str) -> None:
        """Add a job to the reaper's set."""
        with self._lock:
            self._active.add(job_id)

    def untrack(self, job_id: str) -> None:
        """Remove a job from the reaper's set."""
        with self._lock:
            self._active.discard(job_id)

    def tracked(self) -> list[str]:
        """Return the ids the reaper watches."""
        with self._lock:
            return sorted(self._active)

    def request_cancel(self, job_id: str) -> None:
        """Record a cancel request."""
        with self._lock:
            self._set("cancel", job_id, "1", CANCEL_TTL_S)

    def cancelled(self, job_ids: list[str]) -> list[str]:
        """Return those of ``job_ids`` with a cancel request."""
        with self._lock:
            return [j for j in job_ids if self._get("cancel", j) is not None]

    def try_lock(self, name: str, ttl_s: float) -> bool:
        """Take a named lock unless held."""
        with self._lock:
            if self._get("lock", name) is not None:
                return False
            self._set("lock", name, "1", ttl_s)
            return True

    def claim(self, kind: str, digest: str, value: str, ttl_s: int) -> str | None:
        """Store ``value`` unless present; return the present value."""
        with self._lock:
            present = self._get(kind, digest)
            if present is None:
                self._set(kind, digest, value, ttl_s)
            return present

    def put(self, kind: str, digest: str, value: str, ttl_s: int) -> None:
        """Store ``value``, replacing any."""
        with self._lock:
            self._set(kind, digest, value, ttl_s)

    def lookup(self, kind: str, digest: str) -> str | None:
        """Return the stored value, or None."""
        with self._lock:
            return self._get(kind, digest)
