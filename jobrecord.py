"""The job record model: statuses and their transitions, stages, TTLs, and how a write merges.

* ``status`` moves only along ``ALLOWED_TRANSITIONS``: queued -> processing -> completed,
  with failed reachable from any non-terminal status. Completed and failed are terminal:
  any later write raises ``InvalidTransition`` (``ANNOTATIONS`` excepted, which never
  change the outcome). A fenced write from a worker that lost its lease raises ``LeaseLost``.
* Every record lives for the TTL of its current status (``JobTtls``); each write restarts it.
  ``expires_at`` says when the record will vanish unless written again.
* Timestamps are ISO-8601 UTC strings ending in ``Z``.

Plain functions on dicts: ``jobstore`` applies them atomically in Redis or in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Where a job is in its life; ALLOWED_TRANSITIONS says where it may go next."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})

ALLOWED_TRANSITIONS: dict[JobStatus, set[JobStatus]] = {
    JobStatus.QUEUED: {JobStatus.PROCESSING, JobStatus.FAILED},
    JobStatus.PROCESSING: {JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED},
    JobStatus.COMPLETED: set(),
    JobStatus.FAILED: set(),
}


class Stage(StrEnum):
    """What a job is doing now, shown to clients (finer than its status)."""

    FILE_RECEIVED = "file_received"
    READING = "reading"
    READING_COMPLETE = "reading_complete"
    CHUNKING = "chunking"
    DONE = "done"
    FAILED = "failed"


class InvalidTransition(Exception):
    """A write would move a job's status along a path the model forbids."""


class LeaseLost(InvalidTransition):
    """A fenced write came from a worker whose lease on the job was taken over."""


# Fields that may still be written on a terminal job (they never change its outcome).
ANNOTATIONS = frozenset({"webhook"})


@dataclass(frozen=True)
class JobTtls:
    """Seconds a job record lives after its last write, by status.

    active: a queued or processing job (long, so a slow extraction never loses its record).
    completed: a completed job and its result (short: results can be large).
    failed: a failed job (long enough for a client to come back and read why).
    """

    active: int = 86400
    completed: int = 3600
    failed: int = 86400
    tombstone: int = 7 * 86400

    @classmethod
    def from_settings(cls, settings: Any) -> JobTtls:
        """Build the TTLs from ``config.Settings``."""
        return cls(
            active=settings.redis_job_ttl,
            completed=settings.redis_completed_ttl,
            failed=settings.redis_failed_ttl,
            tombstone=getattr(settings, "job_tombstone_ttl", cls.tombstone),
        )

    def ttl_for(self, status: JobStatus | str) -> int:
        """Return the TTL in seconds for a record in ``status``."""
        status = JobStatus(status)
        if status is JobStatus.COMPLETED:
            return self.completed
        if status is JobStatus.FAILED:
            return self.failed
        return self.active


def utc_iso(timestamp: float) -> str:
    """Format a POSIX timestamp as ISO-8601 UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_transition(current: JobStatus | str, new: JobStatus | str) -> None:
    """Raise InvalidTransition unless a job in ``current`` may be written with ``new``."""
    current, new = JobStatus(current), JobStatus(new)
    if current in TERMINAL:
        raise InvalidTransition(f"the job is already {current.value}; it cannot change")
    if new is not current and new not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(f"a {current.value} job cannot become {new.value}")


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate status/stage and store them as plain strings so records stay JSON."""
    plain = dict(fields)
    if "status" in plain:
        plain["status"] = JobStatus(plain["status"]).value
    if "stage" in plain:
        plain["stage"] = Stage(plain["stage"]).value
    return plain


def _stamp(record: dict[str, Any], now: float, ttls: JobTtls) -> dict[str, Any]:
    """Set updated_at and expires_at for a write happening at ``now``."""
    record["updated_at"] = utc_iso(now)
    record["expires_at"] = utc_iso(now + ttls.ttl_for(record["status"]))
    return record


def new_record(job: dict[str, Any], now: float, ttls: JobTtls) -> dict[str, Any]:
    """Build the first stored record of a job."""
    record = {"status": JobStatus.QUEUED.value, "stage": Stage.FILE_RECEIVED.value, "progress": 0}
    record.update(_plain(job))
    record["created_at"] = utc_iso(now)
    return _stamp(record, now, ttls)


def check_fence(record: dict[str, Any], fence: str | None) -> None:
    """Raise LeaseLost unless ``fence`` (when given) is the record's current lease token."""
    if fence is not None and record.get("lease_token") != fence:
        raise LeaseLost("another worker has taken this job over")


def apply_update(
    record: dict[str, Any],
    fields: dict[str, Any],
    now: float,
    ttls: JobTtls,
    fence: str | None = None,
) -> dict[str, Any]:
    """Return ``record`` with ``fields`` merged in, after checking fence and transition."""
    fields = _plain(fields)
    annotation = record["status"] in TERMINAL and set(fields) <= ANNOTATIONS
    if not annotation:
        check_fence(record, fence)
        check_transition(record["status"], fields.get("status", record["status"]))
    merged = {**record, **fields}
    merged["job_id"], merged["created_at"] = record["job_id"], record["created_at"]
    return _stamp(merged, now, ttls)
