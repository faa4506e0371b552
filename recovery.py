"""The background loop of each worker: heartbeat, cancel watch, and the reaper.

Every tick (at most 0.5 s) it checks for cancel requests on the jobs this worker holds and
kills their parse; every HEARTBEAT_S it renews their leases; at start and every
REAPER_INTERVAL_S, under a store-wide lock so one worker reaps at a time, it looks for jobs
whose lease lapsed: it re-runs those whose upload is on this host (up to MAX_ATTEMPTS runs)
and fails the rest with ``worker_lost``.

After a job-store outage the reaper waits one lease TTL before reaping, so that live
workers can restore leases that lapsed while Redis was away.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import datetime
from typing import Any

from errors import ExtractorError, JobStoreUnavailable, WorkerLost
from jobstore import TERMINAL, InvalidTransition, JobStatus

log = logging.getLogger(__name__)

MAX_TICK_S = 0.5
LOST_MESSAGE = (
    "The server running this job stopped before it finished and the job could not be "
    "restarted; please submit the PDF again."
)


def age_s(iso: str | None) -> float:
    """Return how many seconds ago an ISO-8601 UTC timestamp was (inf if missing)."""
    if not iso:
        return float("inf")
    return time.time() - datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Supervisor:
    """Heartbeat, cancel watch and reaper for one JobManager (duck-typed to avoid a cycle)."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.settings = manager.settings
        self.leases = manager.store.leases
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store_failed_at: float | None = None
        self.reaped: list[tuple[str, str]] = []  # (job_id, "rerun" | "worker_lost"), for tests

    def start(self) -> None:
        """Start the loop on a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="job-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _loop(self) -> None:
        tick = min(MAX_TICK_S, self.settings.heartbeat_s)
        next_beat = next_reap = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            self._guard(self.watch_cancels)
            if now >= next_beat:
                self._guard(self.beat)
                next_beat = now + self.settings.heartbeat_s
            if now >= next_reap:
                self._guard(self.reap_once)
                next_reap = now + self.settings.reaper_interval_s
            self._stop.wait(tick)

    def _guard(self, step: Any) -> None:
        try:
            step()
        except JobStoreUnavailable:
            self._store_failed_at = time.monotonic()
        except Exception:
            log.exception("job supervisor: %s failed", step.__name__)

    def watch_cancels(self) -> None:
        """Kill the parse of every held job a client cancelled."""
        for job_id in self.leases.cancelled(list(self.manager.owned_leases())):
            log.info("job %s: cancel request seen; stopping it", job_id)
            self.manager.stop_job(job_id, "cancelled")

    def beat(self) -> None:
        """Renew the lease of every held job; stop any job another worker took over."""
        for job_id, token in self.manager.owned_leases().items():
            if not self.leases.renew(job_id, token, self.settings.lease_ttl_s):
                log.warning("job %s: lease taken over; stopping the local run", job_id)
                self.manager.stop_job(job_id, "lost")

    def reap_once(self) -> None:
        """Recover every tracked job whose lease lapsed (one worker at a time)."""
        if self.manager.draining or self._recently_unavailable():
            return
        if not self.leases.try_lock("reaper", self.settings.reaper_interval_s * 0.8):
            return
        ids = [j for j in self.leases.tracked() if not self.manager.owns(j)]
        for job_id, holder in zip(ids, self.leases.holders(ids), strict=True):
            if holder is None:
                self._reap(job_id)

    def _recently_unavailable(self) -> bool:
        failed = self._store_failed_at
        grace = self.settings.lease_ttl_s + self.settings.heartbeat_s
        return failed is not None and time.monotonic() - failed < grace

    def _reap(self, job_id: str) -> None:
        record = self.manager.store.get(job_id)
        if record is None or JobStatus(record["status"]) in TERMINAL:
            self.leases.untrack(job_id)
            return
        try:
            if self.manager.can_adopt(record):
                self.manager.adopt(record)
                self.reaped.append((job_id, "rerun"))
            elif self._may_be_rerun_elsewhere(record):
                return
            else:
                self._fail_lost(record)
        except InvalidTransition:
            log.info("job %s: changed while reaping; left alone", job_id)

    def _may_be_rerun_elsewhere(self, record: dict) -> bool:
        # Its own host's reaper gets a few passes first; after that it is lost.
        if record.get("host") == self.manager.host:
            return False
        if record.get("attempts", 1) >= self.settings.max_attempts or record.get("has_password"):
            return False
        wait = self.settings.lease_ttl_s + 3 * self.settings.reaper_interval_s
        return age_s(record.get("updated_at")) < wait

    def _fail_lost(self, record: dict) -> None:
        job_id = record["job_id"]
        error = WorkerLost(LOST_MESSAGE)
        ended = self.manager.store.fail(
            job_id, error.code, error.message, record.get("lease_token")
        )
        self.leases.untrack(job_id)
        if record.get("host") == self.manager.host and record.get("job_dir"):
            shutil.rmtree(record["job_dir"], ignore_errors=True)
        self.reaped.append((job_id, "worker_lost"))
        log.warning("job %s: worker lost; failed with worker_lost", job_id)
        try:
            self.manager.job_ended(ended)
        except ExtractorError:
            log.warning("job %s: could not send its end notice", job_id)
