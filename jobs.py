"""One extraction job's pipeline: store the upload, parse in a child, sanitize, chunk, save.

``jobmanager.JobManager`` runs pipelines on its pool. A job's upload lives in its own 0700
temp directory, removed when the job ends (kept only while a re-run may still need it).
Every write a pipeline makes goes through ``FencedWriter``, fenced by the run's lease token.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import logs
import metrics
from chunking import Chunker, chunk_pages
from config import Settings
from errors import (
    ExtractionError,
    ExtractTimeout,
    JobStoreUnavailable,
    MemoryLimit,
    NoTextLayer,
    ParserCrash,
    Stalled,
)
from extraction import ChildLauncher, ChildLimits, ExtractionProcess, ExtractRequest
from jobstore import TERMINAL, InvalidTransition, JobStatus, JobStore, Stage
from nhost_client import NhostClient
from sanitize import sanitize_page_text
from screening import Screener
from uploads import UploadFile
from validation import JobOptions, check_upload_file

log = logging.getLogger(__name__)

UPLOAD_NAME = "upload.pdf"
COPY_BLOCK = 1024 * 1024
PROGRESS_WRITE_INTERVAL_S = 0.25
READING_START, READING_END, CHUNKING_AT = 5, 85, 90
NHOST_NO_CREDENTIALS = {
    "status": "skipped",
    "document_id": None,
    "chunks_written": 0,
    "error_code": "nhost_credentials_lost",
    "error": "The job was re-run after a worker restart; its Nhost credentials are not kept.",
}
# Outcomes after which the pages already read are kept and the job completes as partial.
PARTIAL_OUTCOMES = (ExtractTimeout, Stalled, MemoryLimit, ParserCrash)
FINAL_WRITE_RETRY_S = 1.0


def new_job_id() -> str:
    """Return a fresh, unguessable job id."""
    return uuid.uuid4().hex


def make_job_dir(settings: Settings) -> Path:
    """Create a private (0700) temp directory for one job's upload."""
    return Path(tempfile.mkdtemp(prefix="pdfx-job-", dir=settings.upload_dir))


def save_upload(stream: BinaryIO, job_dir: Path, settings: Settings) -> tuple[Path, str]:
    """Put the upload in the job dir under a server-made name; return its path and SHA-256.

    An ``UploadFile`` (hashed as the parser wrote it) is linked there; any other stream is
    copied block by block and hashed as it is copied.
    """
    target = job_dir / UPLOAD_NAME
    if isinstance(stream, UploadFile) and stream.link_to(target):
        sha256 = stream.sha256()
    else:
        sha256 = copy_hashed(stream, target)
    check_upload_file(target, settings)
    return target, sha256


def copy_hashed(stream: BinaryIO, target: Path) -> str:
    """Copy ``stream`` to a new file ``target``; return the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while block := stream.read(COPY_BLOCK):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


@dataclass
class PageCollector:
    """Accumulates sanitized pages and warnings as the child streams them."""

    pages: dict[int, str] = field(default_factory=dict)
    tables: dict[str, list] = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    opened: dict = field(default_factory=dict)
    structure: list[dict] | None = None  # the child's structure walk (None = never came)
    partial: bool = False

    def add(self, event: dict) -> None:
        """Take one event from the parse child."""
        kind = event["type"]
        if kind == "opened":
            self.opened = event
        elif kind == "metadata":
            self.opened = {**self.opened, "metadata": event["metadata"]}
        elif kind == "page":
            self._add_page(event)
        elif kind == "page_failed":
            self.failed.append({"page_number": event["page_number"], "code": event["code"]})
            self.warnings.append(f"Page {event['page_number']} could not be read.")
        elif kind == "warning":
            self.warnings.append(event["message"])
        elif kind == "security":
            self.structure = event["indicators"]

    def stop_early(self, error: ExtractionError, wants_text: bool) -> None:
        """Keep the pages read before the parse ended early; re-raise when there are none."""
        if not (wants_text and self.pages):
            raise error
        done = set(self.pages) | {page["page_number"] for page in self.failed}
        left = [n for n in self.opened["selected"] if n not in done]
        if left:  # the page being read when the parse ended
            self.failed.append({"page_number": left[0], "code": error.code})
        self.partial = True
        self.warnings.append(
            f"Extraction stopped early ({error.code}): {error.message} "
            f"{len(self.pages)} of {len(self.opened['selected'])} page(s) were read."
        )

    def _add_page(self, event: dict) -> None:
        number = event["page_number"]
        text, warnings = sanitize_page_text(event["text"], number)
        self.pages[number] = text
        self.warnings.extend(warnings)
        if "tables" in event:
            self.tables[f"page_{number}"] = event["tables"]


class Pipeline:
    """One job's run: parse in a child, then sanitize, chunk and store the result."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        job_id: str,
        options: JobOptions,
        nhost: NhostClient | None = None,
        launcher: ChildLauncher | None = None,
        fence: str | None = None,
        before_complete: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = FencedWriter(store, job_id, fence, settings.store_retry_s)
        self.job_id = job_id
        self.options = options
        self.nhost = nhost
        self.launcher = launcher
        self.before_complete = before_complete
        self.collected = PageCollector()
        self._last_write = 0.0
        self._started = self._stage_started = time.monotonic()
        self._stage = Stage.FILE_RECEIVED.value
        self._size = 0
        self.screener: Screener | None = None
        self.screening: dict = {}
        self.process: ExtractionProcess | None = None
        self._killed = False
        # Chunking and the dangerous-content scan run per page as pages arrive, so little
        # of either is left after the last page (see BENCHMARKS.md).
        self._chunker = Chunker(options.chunk_size, options.chunk_overlap)
        self._streamed: list[int] = []  # pages given to the chunker and scan, in order
        self._findings: list[dict] = []

    def screen(self, screener: Screener, screening: dict) -> None:
        """Attach the upload's screening: data.security and the policies then apply."""
        self.screener, self.screening = screener, screening

    def kill(self) -> None:
        """Stop the parse from another thread (cancel, lost lease, shutdown)."""
        self._killed = True
        if self.process is not None:
            self.process.kill()

    def run(self, upload: Path) -> None:
        """Run every stage; a typed extraction failure fails the job with its code."""
        self._size = upload.stat().st_size
        self._update(
            status=JobStatus.PROCESSING.value,
            stage=Stage.READING.value,
            progress=READING_START,
            message="Reading the PDF.",
        )
        try:
            self._parse(upload)
            data = self._finish()
        except ExtractionError as error:
            self.store.fail(error.code, error.message)
            self._finished("failed", error.code)
            return
        if self.before_complete is not None:
            self.before_complete()
        self.store.complete(
            data,
            message="Extraction complete.",
            pages_done=len(self.collected.pages) + len(self.collected.failed),
            **self._push_to_nhost(data),
        )
        self._finished("completed", None, pages=len(self.collected.pages))

    def _push_to_nhost(self, data: dict) -> dict:
        """Push the result when asked; the outcome never fails the extraction."""
        if not self.options.send_to_nhost or self.nhost is None:
            return {}
        self._update(progress=95, message="Sending the document and chunks to Nhost.")
        identity = self.options.nhost_identity
        if identity is None:  # a re-run after a worker restart: the credentials were not kept
            metrics.record_nhost_push(NHOST_NO_CREDENTIALS["status"])
            return {"nhost_result": NHOST_NO_CREDENTIALS}
        result = self.nhost.push_document(
            job_id=self.job_id,
            filename=self.options.filename,
            upload_device=self.options.upload_device,
            user_id=identity.user_id,
            data=data,
            identity=identity,
        )
        metrics.record_nhost_push(result["status"])
        return {"nhost_result": result}

    def _parse(self, upload: Path) -> None:
        limits = ChildLimits.from_settings(self.settings)
        process = ExtractionProcess(self._request(upload), limits=limits, launcher=self.launcher)
        with process as child:
            self.process = child
            child.start()
            if self._killed:  # a stop that came before the child existed
                child.kill()
            if self.screener:  # while the child opens the file, off the upload's answer
                self.screening = self.screener.with_byte_scan(self.screening, upload)
            try:
                for event in child.events():
                    self.collected.add(event)
                    if event["type"] == "page" and self.options.wants_text:
                        self._stream_page(event["page_number"])
                    self._report_progress(event)
                    if event["type"] == "security" and self.screener:
                        self.screener.enforce_features(self._security())
            except PARTIAL_OUTCOMES as error:
                if self._killed:  # cancelled, taken over or handed back: no partial result
                    raise
                self.collected.stop_early(error, self.options.wants_text)

    def _stream_page(self, number: int) -> None:
        text = self.collected.pages[number]
        self._chunker.add_page(number, text)
        self._streamed.append(number)
        if self.screener:
            self._findings.extend(self.screener.scan_page(number, text))

    def _request(self, upload: Path) -> ExtractRequest:
        return ExtractRequest(
            path=str(upload),
            password=self.options.password,
            pages=list(self.options.pages) if self.options.pages else None,
            extract_type=self.options.extract_type,
            include_tables=self.options.include_tables,
            max_pages=self.settings.max_pages,
            split_min_pages=self.settings.extract_split_min_pages,
        )

    def _report_progress(self, event: dict) -> None:
        if event["type"] == "opened":
            total = len(event["selected"]) if self.options.wants_text else 0
            self._update(pages_total=total, message=f"Reading {total} page(s).")
        elif event["type"] in ("page", "page_failed"):
            self._page_progress()

    def _page_progress(self) -> None:
        done = len(self.collected.pages) + len(self.collected.failed)
        total = len(self.collected.opened.get("selected", [])) or 1
        now = time.monotonic()
        if now - self._last_write < PROGRESS_WRITE_INTERVAL_S and done < total:
            return
        self._last_write = now
        progress = READING_START + (READING_END - READING_START) * done // total
        self._update(pages_done=done, progress=progress, message=f"Read {done} of {total} page(s).")

    def _finish(self) -> dict:
        self._update(
            stage=Stage.READING_COMPLETE.value, progress=READING_END, message="Reading complete."
        )
        self._check_text_found()
        if self.screener:  # again: the child may have ended without its security event
            self.screener.enforce_features(self._security())
        pages = sorted(self.collected.pages.items())
        streamed = self._streamed == [number for number, _ in pages]
        if self.screener and self.options.wants_text:
            findings = sorted(self._findings, key=lambda finding: finding["page"])
            if not streamed:  # never expected: pages come in order, each once
                findings = self.screener.scan_pages(pages)
            self.collected.warnings.extend(self.screener.judge_text(findings))
        chunks: list[dict] = []
        if self.options.wants_text:
            self._update(
                stage=Stage.CHUNKING.value,
                progress=CHUNKING_AT,
                message="Cutting the text into chunks.",
            )
            if streamed:
                chunks, warnings = self._chunker.finish()
            else:
                chunks, warnings = chunk_pages(
                    pages, self.options.chunk_size, self.options.chunk_overlap
                )
            self.collected.warnings.extend(warnings)
        return self._result(chunks)

    def _check_text_found(self) -> None:
        collected = self.collected
        if not self.options.wants_text:
            return
        if not collected.pages and collected.failed:
            raise ParserCrash("No page of this PDF could be read.")
        if not any(text.strip() for text in collected.pages.values()):
            raise NoTextLayer()

    def _result(self, chunks: list[dict]) -> dict:
        collected = self.collected
        data: dict = {"metadata": collected.opened.get("metadata", {})}
        if self.options.wants_text:
            data["text"] = {
                f"page_{n}": {"page_number": n, "text": t, "char_count": len(t)}
                for n, t in sorted(collected.pages.items())
            }
            data["chunks"] = chunks
        if self.options.wants_tables:
            data["tables"] = collected.tables
        if collected.failed:
            data["failed_pages"] = collected.failed
        if collected.partial:
            data["partial"] = True
        data["warnings"] = collected.warnings
        if self.screener:
            data["security"] = self._security()
        return data

    def _security(self) -> dict:
        return self.screener.report(self.screening, self.collected.structure)

    def _update(self, **fields: object) -> None:
        self.store.progress(**fields)
        if fields.get("stage", self._stage) != self._stage:
            self._stage_changed(str(fields["stage"]))

    def _stage_changed(self, stage: str) -> None:
        now = time.monotonic()
        if self._stage != Stage.FILE_RECEIVED.value:  # its wait is before the job starts
            metrics.record_stage(self._stage, now - self._stage_started)
        logs.event(log, "job_stage", stage=stage, previous=self._stage)
        self._stage, self._stage_started = stage, now

    def _finished(self, status: str, error_code: str | None, pages: int = 0) -> None:
        self._stage_changed(Stage.DONE.value if status == "completed" else Stage.FAILED.value)
        seconds = time.monotonic() - self._started
        metrics.record_job_finished(status, error_code, seconds, pages, self._size)
        if error_code in logs.NAMED_SECURITY_CODES:
            logs.security_event(error_code, upload_name=self.options.filename)
        logs.event(
            log,
            "job_finished",
            status=status,
            error_code=error_code,
            pages=pages,
            duration_s=round(seconds, 3),
        )


class FencedWriter:
    """One job's writes, fenced by its lease token; progress is best effort, the end is retried.

    A progress write lost to a Redis outage is kept and merged into the next write (so the
    status still moves queued -> processing before the end). The final write waits up to
    STORE_RETRY_S for the store to come back, so a job that ends during an outage is
    recorded when Redis returns instead of vanishing.
    """

    def __init__(self, store: JobStore, job_id: str, fence: str | None, retry_s: float) -> None:
        self._store = store
        self._job_id = job_id
        self._fence = fence
        self._retry_s = retry_s
        self._pending: dict = {}

    def progress(self, **fields: object) -> None:
        """Write progress fields; while the store is down, keep them for the next write."""
        self._pending.update(fields)
        try:
            self._flush()
        except JobStoreUnavailable:
            log.warning("job %s: progress not saved (job store unreachable)", self._job_id)

    def _flush(self) -> None:
        if self._pending:
            self._store.update(self._job_id, self._fence, **self._pending)
            self._pending = {}

    def complete(self, data: dict, **fields: object) -> dict:
        """Write the result, retrying while the store is down."""
        return self._final(lambda: self._store.complete(self._job_id, data, self._fence, **fields))

    def fail(self, code: str, message: str) -> dict:
        """Write the failure, retrying while the store is down."""
        return self._final(lambda: self._store.fail(self._job_id, code, message, self._fence))

    def _final(self, write: Callable[[], dict]) -> dict:
        deadline = time.monotonic() + self._retry_s
        retried = False
        while True:
            try:
                self._flush()  # e.g. the queued -> processing write an outage swallowed
                return write()
            except JobStoreUnavailable:
                if time.monotonic() >= deadline:
                    raise
                retried = True
                time.sleep(FINAL_WRITE_RETRY_S)
            except InvalidTransition:
                if retried and (done := self._written_by_us()):
                    return done  # an earlier attempt landed but its reply was lost
                raise

    def _written_by_us(self) -> dict | None:
        record = self._store.get(self._job_id)
        ours = record is not None and record.get("lease_token") == self._fence
        return record if ours and JobStatus(record["status"]) in TERMINAL else None
