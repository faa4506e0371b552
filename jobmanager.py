"""Each gunicorn worker's JobManager: the pool, the leases of its jobs, cancel and drain.

A job is leased to the worker that runs it (or holds it queued); ``recovery.Supervisor``
renews the leases, watches for cancel requests and reaps jobs whose worker died. Every
write a run makes is fenced by its lease token (``jobs.FencedWriter``), so a worker that
lost a job can no longer change it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import BinaryIO

import logs
import metrics
from config import Settings
from errors import (
    Busy,
    Cancelled,
    ExtractorError,
    JobExpired,
    JobNotFound,
    JobStoreUnavailable,
    ParserCrash,
    ShuttingDown,
)
from extraction import ChildLauncher, ChildLimits
from idempotency import Fingerprints, claim_idempotency_key, remember_result, reuse_result
from jobs import UPLOAD_NAME, Pipeline, make_job_dir, new_job_id, save_upload
from jobstore import TERMINAL, InvalidTransition, JobStatus, JobStore, LeaseLost, Stage
from nhost_client import NhostClient
from recovery import Supervisor
from screening import Screener
from validation import JobOptions
from webhooks import Notifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """What one upload asked for, beyond the file itself."""

    job_id: str
    options: JobOptions
    owner: str | None
    idempotency_key: str | None
    webhook_url: str | None
    screening: dict


@dataclass
class Owned:
    """A job this worker holds the lease of: queued in its pool or running."""

    token: str
    job_dir: Path
    screening: dict
    done: threading.Event = field(default_factory=threading.Event)
    dedupe_key: str | None = None  # the content fingerprint a DEDUPE index points at
    future: Future | None = None
    pipeline: Pipeline | None = None
    stop_reason: str | None = None  # cancelled, lost, handed_back, store_down or dropped


class JobManager:
    """Owns the worker pool, the leases of its jobs, and the heartbeat/reaper loop."""

    def __init__(self, settings: Settings, store: JobStore, background: bool = True) -> None:
        self.settings = settings
        self.store = store
        self.host = socket.gethostname()
        self.screener = Screener(settings)
        self._nhost = NhostClient(settings)
        self._pool = ThreadPoolExecutor(settings.extract_workers, thread_name_prefix="extract")
        self.launcher = ChildLauncher(
            ChildLimits.from_settings(settings), fork_server=settings.extract_fork_server
        )
        self._owned: dict[str, Owned] = {}
        self._lock = threading.Lock()
        self.draining = False
        # Long-polls hold a request thread each: at most JOB_WAIT_SLOTS of them at a time.
        self._wait_slots = threading.BoundedSemaphore(settings.job_wait_slots)  # 0: none
        self._waits_stopped = threading.Event()  # set when the worker starts shutting down
        self.notifier = Notifier(settings, store)
        self.supervisor = Supervisor(self)
        if background:
            self.supervisor.start()

    def check_capacity(self) -> None:
        """Raise Busy when this worker's queue is full or it is shutting down."""
        if self.draining:
            raise ShuttingDown()
        with self._lock:
            pending = len(self._owned)
        if pending >= self.settings.extract_workers + self.settings.queue_max:
            raise Busy()

    def submit(
        self,
        stream: BinaryIO,
        options: JobOptions,
        owner: str | None = None,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
    ) -> dict:
        """Store and screen the upload, record the job as queued and hand it to the pool.

        ``owner`` (a hash of the caller's credential) is kept on the job: only the same
        caller may see it. A refused upload (malware included) is deleted at once.
        """
        self.check_capacity()
        job_id, token = new_job_id(), new_job_id()
        job_dir = make_job_dir(self.settings)
        try:
            upload, sha256 = save_upload(stream, job_dir, self.settings)
            screening = self.screener.screen_upload(upload, sha256)
            prints = Fingerprints.of(screening["sha256"], options, webhook_url)
            known = self._known_job(
                Submission(job_id, options, owner, idempotency_key, webhook_url, screening), prints
            )
            if known is not None:
                shutil.rmtree(job_dir, ignore_errors=True)
                if known["job_id"] == job_id:  # a fresh job completed from a reused result
                    self.job_ended(known)
                return known
            # Lease, then track, then create: the reaper never sees a stored job without both.
            self.store.leases.acquire(job_id, token, self.settings.lease_ttl_s)
            self.store.leases.track(job_id)
            submission = Submission(job_id, options, owner, idempotency_key, webhook_url, screening)
            job = self.store.create(self._new_record(submission, token, upload, prints))
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        metrics.record_job_submitted()
        self._start(job_id, Owned(token, job_dir, screening, dedupe_key=prints.content), options)
        return job

    def wait(self, job_id: str, timeout: float) -> bool:
        """Wait until a job this worker runs has ended; return False on timeout."""
        with self._lock:
            owned = self._owned.get(job_id)
        return owned.done.wait(timeout) if owned else True

    def wait_ended(self, job_id: str, timeout_s: float) -> bool:
        """Wait (a long-poll) until a job run by any worker ends, at most ``timeout_s``
        (capped by JOB_WAIT_MAX_S); return False at once when every wait slot is taken or
        the worker is stopping."""
        timeout_s = min(timeout_s, self.settings.job_wait_max_s)
        if timeout_s <= 0 or self._waits_stopped.is_set():
            return False
        if not self._wait_slots.acquire(blocking=False):
            return False
        try:
            self.store.wait_ended(job_id, timeout_s, self._waits_stopped)
            return True
        finally:
            self._wait_slots.release()

    def warm_up(self) -> None:
        """Start the parse zygote now, so the first job does not wait for its imports."""
        self.launcher.start_zygote()

    def stop_waits(self) -> None:
        """Answer every long-poll now and wait in no new one: gunicorn's graceful stop waits
        for open requests, and a 30 s long-poll would spend the grace drain needs."""
        self._waits_stopped.set()

    def cancel(self, job_id: str, owner: str | None = None) -> tuple[dict, bool]:
        """Cancel a queued/running job, or purge a finished one; return (final record, purged)."""
        record = self.store.get(job_id)
        if record is None and self.store.was_expired(job_id, owner):
            raise JobExpired()
        if record is None or record.get("owner") != owner:
            raise JobNotFound()
        if JobStatus(record["status"]) in TERMINAL:
            self.store.delete(job_id)
            self.store.leases.untrack(job_id)
            return record, True
        self.store.leases.request_cancel(job_id)
        try:
            error = Cancelled("The job was cancelled by the client.")
            record = self.store.fail(job_id, error.code, error.message)
        except InvalidTransition:  # it finished meanwhile: report that outcome
            return self.store.get(job_id) or record, False
        self.stop_job(job_id, "cancelled")
        self.job_ended(record)
        return record, False

    def stop_job(self, job_id: str, reason: str) -> None:
        """Stop a job this worker owns: drop it from the queue, or kill its parse child."""
        with self._lock:
            owned = self._owned.get(job_id)
        if owned is None or owned.stop_reason:
            return
        owned.stop_reason = reason
        if owned.future is not None and owned.future.cancel():
            return  # its done-callback cleans up
        if owned.pipeline is not None:
            owned.pipeline.kill()

    def owned_leases(self) -> dict[str, str]:
        """Return job id -> lease token for every job this worker holds."""
        with self._lock:
            return {job_id: o.token for job_id, o in self._owned.items() if not o.stop_reason}

    def owns(self, job_id: str) -> bool:
        """Tell whether this worker holds the job."""
        with self._lock:
            return job_id in self._owned

    def adopt(self, record: dict) -> None:
        """Re-run an orphaned job whose upload is on this host, under a fresh lease."""
        job_id, token = record["job_id"], new_job_id()
        attempt = record.get("attempts", 1) + 1
        limit = self.settings.max_attempts
        message = f"Restarted after its worker stopped (attempt {attempt} of {limit})."
        self.store.update(
            job_id, record.get("lease_token"), lease_token=token, attempts=attempt, message=message
        )
        self.store.leases.acquire(job_id, token, self.settings.lease_ttl_s)
        log.warning("job %s: re-running on this worker (attempt %d)", job_id, attempt)
        job_dir = Path(record["job_dir"])
        screening = record.get("screening") or self.screener.screen_upload(job_dir / UPLOAD_NAME)
        owned = Owned(token, job_dir, screening, dedupe_key=record.get("dedupe_key"))
        metrics.record_job_submitted()  # a re-run goes through this worker's queue too
        self._start(job_id, owned, options_from_record(record))

    def can_adopt(self, record: dict) -> bool:
        """Tell whether an orphaned job can be re-run here."""
        job_dir = record.get("job_dir")
        return (
            not self.draining
            and record.get("host") == self.host
            and record.get("attempts", 1) < self.settings.max_attempts
            and not record.get("has_password")
            and job_dir is not None
            and (Path(job_dir) / UPLOAD_NAME).is_file()
        )

    def drain(self, timeout: float) -> None:
        """On shutdown: take no new jobs, let running ones finish, hand the rest back."""
        self.draining = True
        self.stop_waits()
        with self._lock:
            owned = dict(self._owned)
        for job_id, item in owned.items():
            if item.future is not None and not item.future.running():
                self.hand_back(job_id)
        deadline = time.monotonic() + timeout
        for item in owned.values():
            item.done.wait(max(0.0, deadline - time.monotonic()))
        for job_id in self.owned_leases():
            self.hand_back(job_id)
        self.shutdown(wait=False)

    def hand_back(self, job_id: str) -> None:
        """Give a job up so a reaper on this host re-runs it, without failing it."""
        with self._lock:
            owned = self._owned.get(job_id)
        if owned is None:
            return
        try:
            self.store.update(
                job_id, owned.token, lease_token=new_job_id(),
                message="Waiting for another worker: the server is restarting.",
            )  # fmt: skip
            self.store.leases.release(job_id, owned.token)
        except (ExtractorError, InvalidTransition) as exc:
            log.warning("job %s: could not hand back: %s", job_id, exc)
        log.warning("job %s: handed back for recovery", job_id)
        self.stop_job(job_id, "handed_back")

    def shutdown(self, wait: bool = True) -> None:
        """Stop the loop and the pool (used by tests and at worker exit)."""
        self.supervisor.stop()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self.notifier.shutdown(wait=wait)
        self.launcher.close()

    def job_ended(self, record: dict) -> None:
        """Act on a job that just became terminal: index its result, send its webhook."""
        if self.settings.dedupe and record["status"] == JobStatus.COMPLETED.value:
            with contextlib.suppress(ExtractorError):
                remember_result(self.store, record)
        if (record.get("options") or {}).get("send_webhook"):
            self.notifier.send(record, record.get("webhook_url") or self.settings.webhook_url)

    def _known_job(self, sub: Submission, prints: Fingerprints) -> dict | None:
        if sub.idempotency_key:
            scoped = f"{sub.owner or ''}:{sub.idempotency_key}"  # one caller's key, not another's
            known = claim_idempotency_key(self.store, scoped, prints.request, sub.job_id)
            if known is not None:
                return known
        # Never for a password (the result would skip it) or an Nhost push (it would not run).
        if self.settings.dedupe and not sub.options.password and not sub.options.send_to_nhost:
            return reuse_result(self.store, prints.content, sub)
        return None

    def _new_record(self, sub: Submission, token: str, upload: Path, prints: Fingerprints) -> dict:
        options = sub.options
        return {
            "job_id": sub.job_id,
            "status": JobStatus.QUEUED.value,
            "stage": Stage.FILE_RECEIVED.value,
            "progress": 0,
            "message": "File received; waiting for a worker.",
            "pages_done": 0,
            "pages_total": None,
            "filename": options.filename,
            "file_size": upload.stat().st_size,
            "options": options.public(),
            "owner": sub.owner,
            "screening": sub.screening,
            # Internal fields (api.public_job never shows them).
            "lease_token": token,
            "attempts": 1,
            "host": self.host,
            "job_dir": str(upload.parent),
            "has_password": bool(options.password),
            "webhook_url": sub.webhook_url,
            "dedupe_key": prints.content,
        }

    def _start(self, job_id: str, owned: Owned, options: JobOptions) -> None:
        with self._lock:
            self._owned[job_id] = owned
        owned.future = self._pool.submit(self._run, job_id, owned, options)
        # A job dropped from the queue (cancel, hand-back, pool shutdown) never runs _run.
        owned.future.add_done_callback(lambda f: f.cancelled() and self._dropped(job_id, owned))

    def _run(self, job_id: str, owned: Owned, options: JobOptions) -> None:
        logs.bind(job_id=job_id)
        metrics.record_job_started()
        ended = False
        try:
            pipeline = Pipeline(
                self.settings,
                self.store,
                job_id,
                options,
                self._nhost,
                launcher=self.launcher,
                fence=owned.token,
                before_complete=self._indexer(job_id, owned, options),
            )
            pipeline.screen(self.screener, owned.screening)
            owned.pipeline = pipeline
            if owned.stop_reason is None:
                pipeline.run(owned.job_dir / UPLOAD_NAME)
                ended = True
        except LeaseLost:
            owned.stop_reason = owned.stop_reason or "lost"
            log.warning("job %s: lease lost; another worker owns it now", job_id)
        except InvalidTransition:
            log.info("job %s: ended elsewhere (cancelled); stopped", job_id)
            self._keep_tracked_unless_terminal(job_id, owned)
        except JobStoreUnavailable:
            owned.stop_reason = "store_down"  # keep the upload: the reaper re-runs it later
            log.error("job %s: the job store stayed unreachable; result not saved", job_id)
        except Exception:
            log.exception("job %s: unexpected failure", job_id)
            ended = self._fail_quietly(job_id, owned, ParserCrash())
        finally:
            self._finish(job_id, owned)
            metrics.record_job_ended()
            logs.clear()
        if ended:
            self._ended_by_id(job_id, options)

    def _indexer(self, job_id: str, owned: Owned, options: JobOptions) -> Callable[[], None]:
        """Return what indexes the result for DEDUPE just before it is stored: once a client
        sees the job completed, an identical upload finds it (an index to a job that then
        fails is harmless: only completed jobs are reused)."""

        def index() -> None:
            if self.settings.dedupe and not options.password:
                record = {"job_id": job_id, "dedupe_key": owned.dedupe_key}
                with contextlib.suppress(ExtractorError):
                    remember_result(self.store, record)

        return index

    def _ended_by_id(self, job_id: str, options: JobOptions) -> None:
        if not options.send_webhook:
            return  # DEDUPE's index is written before the end: spare reading the result back
        try:
            record = self.store.get(job_id)
        except ExtractorError:
            log.warning("job %s: store unreachable after the end; no webhook", job_id)
            return
        if record is not None:
            self.job_ended(record)

    def _keep_tracked_unless_terminal(self, job_id: str, owned: Owned) -> None:
        # A refused write on a job that is not terminal must not strand it: leave it to
        # the reaper (worker_lost) rather than release it.
        with contextlib.suppress(ExtractorError):
            record = self.store.get(job_id)
            if record is not None and JobStatus(record["status"]) not in TERMINAL:
                log.error("job %s: a write was refused on a live job; left to the reaper", job_id)
                owned.stop_reason = "dropped"

    def _dropped(self, job_id: str, owned: Owned) -> None:
        # Dropped from the queue without a reason (pool shutdown): the job stays tracked,
        # so once its lease lapses the reaper fails it worker_lost instead of stranding it.
        owned.stop_reason = owned.stop_reason or "dropped"
        metrics.record_job_started()  # off the queue gauge: it never ran
        metrics.record_job_ended()
        self._finish(job_id, owned)

    def _finish(self, job_id: str, owned: Owned) -> None:
        keep_upload = owned.stop_reason in ("lost", "handed_back", "store_down")
        if not keep_upload:
            shutil.rmtree(owned.job_dir, ignore_errors=True)
        if not keep_upload and owned.stop_reason != "dropped":
            with contextlib.suppress(ExtractorError):
                self.store.leases.release(job_id, owned.token)
                self.store.leases.untrack(job_id)
        with self._lock:
            self._owned.pop(job_id, None)
        owned.done.set()

    def _fail_quietly(self, job_id: str, owned: Owned, error: ExtractorError) -> bool:
        try:
            self.store.fail(job_id, error.code, error.message, owned.token)
            metrics.record_job_finished("failed", error.code, 0.0)
            return True
        except Exception:  # the store may itself be the failure; the reaper handles it then
            log.exception("job %s: could not record failure", job_id)
            return False


def options_from_record(record: dict) -> JobOptions:
    """Rebuild a job's options from its stored (password-free) form, for a re-run."""
    stored = dict(record.get("options") or {})
    known = {f.name for f in fields(JobOptions)}
    stored = {k: v for k, v in stored.items() if k in known}
    if stored.get("pages"):
        stored["pages"] = tuple(tuple(r) for r in stored["pages"])
    return JobOptions(**stored)
