"""Run one PDF parse in a child process (``python -m parse_child``) and read its events.

The child gets the request as one JSON object on stdin (never argv: it holds the password)
and writes one JSON event per line on stdout:

- ``opened``: pages_total, selected (1-based page numbers), metadata, engine
- ``page``: page_number, text, engine, and ``tables`` when tables were requested
- ``page_failed``: page_number, code
- ``warning``: message
- ``security`` (once, after ``opened``): indicators of the structure walk (riskscan)
- last, ``done`` or ``error`` (code, message)

The child's output is untrusted: every line is size-capped and validated here, and anything
unexpected ends the parse as ``ParserCrash``. No parser library is imported in this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import errors

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent
# A page's text is capped downstream, but one raw page (plus its tables) can be large.
MAX_LINE_BYTES = 16 * 1024 * 1024
STDERR_TAIL_BYTES = 64 * 1024
EXIT_GRACE_S = 5.0
MAX_INDICATORS = 100
ENGINES = frozenset({"pdfium", "pdfminer", "pypdf"})
EXTRACT_TYPES = frozenset({"all", "text", "metadata", "tables"})
METADATA_STRINGS = (
    "title", "author", "subject", "creator", "producer",
    "creation_date", "modification_date", "pdf_version",
)  # fmt: skip


@dataclass(frozen=True)
class ExtractRequest:
    path: str
    password: str | None = None
    pages: list[tuple[int, int]] | None = None
    extract_type: str = "all"
    include_tables: bool = False
    max_pages: int = 10000

    def to_json(self) -> str:
        """Return the JSON object the child reads on stdin."""
        return json.dumps(
            {
                "path": self.path,
                "password": self.password,
                "pages": None if self.pages is None else [[a, b] for a, b in self.pages],
                "extract_type": self.extract_type,
                "include_tables": self.include_tables,
                "max_pages": self.max_pages,
            }
        )


class StderrTail:
    """Drain a pipe in a background thread, keeping only its last bytes."""

    def __init__(self, pipe: IO[bytes], limit: int = STDERR_TAIL_BYTES) -> None:
        self._pipe = pipe
        self._limit = limit
        self._buffer = bytearray()
        self._thread = threading.Thread(target=self._drain, name="parse-child-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self._pipe.read1(65536):
                self._buffer += chunk
                del self._buffer[: -self._limit]

    def text(self, wait_s: float = 1.0) -> str:
        """Return the kept tail, after waiting briefly for the pipe to end."""
        self._thread.join(wait_s)
        return bytes(self._buffer).decode("utf-8", "replace")

    def close(self) -> None:
        """Stop following the pipe (once the child is dead, the pipe has ended)."""
        self._thread.join(1.0)
        with contextlib.suppress(OSError):
            self._pipe.close()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _crash(reason: str) -> errors.ParserCrash:
    log.debug("parse child output rejected: %s", reason)
    return errors.ParserCrash()


def validate_metadata(metadata: Any) -> dict[str, Any]:
    """Return the checked metadata of an ``opened`` event."""
    if not isinstance(metadata, dict):
        raise _crash("metadata is not an object")
    clean = {key: metadata.get(key) for key in METADATA_STRINGS}
    if not all(value is None or isinstance(value, str) for value in clean.values()):
        raise _crash("a metadata field is not a string")
    for key in ("encrypted", "title_inferred"):
        if not isinstance(metadata.get(key), bool):
            raise _crash(f"metadata {key} is not a boolean")
        clean[key] = metadata[key]
    if not _is_int(metadata.get("num_pages")):
        raise _crash("metadata num_pages is not an integer")
    return {**clean, "num_pages": metadata["num_pages"]}


def validate_opened(event: dict[str, Any]) -> dict[str, Any]:
    """Return the checked ``opened`` event."""
    total, selected = event.get("pages_total"), event.get("selected")
    if not _is_int(total) or total < 1 or event.get("engine") not in ENGINES:
        raise _crash("bad pages_total or engine")
    if not isinstance(selected, list) or not all(_is_int(n) and 1 <= n <= total for n in selected):
        raise _crash("bad selected pages")
    if selected != sorted(set(selected)):
        raise _crash("selected pages are not sorted and unique")
    return {
        "type": "opened",
        "pages_total": total,
        "selected": selected,
        "metadata": validate_metadata(event.get("metadata")),
        "engine": event["engine"],
    }


def validate_tables(tables: Any) -> list[dict[str, Any]]:
    """Return the checked tables of a ``page`` event."""
    if not isinstance(tables, list):
        raise _crash("tables is not a list")
    checked = []
    for table in tables:
        rows = table.get("rows") if isinstance(table, dict) else None
        if not _is_int(table.get("table_index") if rows is not None else None):
            raise _crash("bad table")
        if not isinstance(rows, list) or not all(_is_row(row) for row in rows):
            raise _crash("bad table rows")
        checked.append({"table_index": table["table_index"], "rows": rows})
    return checked


def _is_row(row: Any) -> bool:
    return isinstance(row, list) and all(cell is None or isinstance(cell, str) for cell in row)


def validate_page(event: dict[str, Any]) -> dict[str, Any]:
    """Return the checked ``page`` event (page_number is checked by the caller)."""
    if not isinstance(event.get("text"), str) or event.get("engine") not in ENGINES:
        raise _crash("bad page text or engine")
    page = {
        "type": "page",
        "page_number": event["page_number"],
        "text": event["text"],
        "engine": event["engine"],
    }
    if "tables" in event:
        page["tables"] = validate_tables(event["tables"])
    return page


def validate_security(event: dict[str, Any]) -> dict[str, Any]:
    """Return the checked ``security`` event: structure indicators from riskscan."""
    indicators = event.get("indicators")
    if not isinstance(indicators, list) or len(indicators) > MAX_INDICATORS:
        raise _crash("bad security indicators")
    for item in indicators:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("key"), str)
            and len(item["key"]) <= 64
            and _is_int(item.get("count"))
            and isinstance(item.get("obfuscated"), bool)
            and item.get("source") == "structure"
        ):
            raise _crash("bad security indicator")
    fields = ("key", "count", "obfuscated", "source")
    return {"type": "security", "indicators": [{f: i[f] for f in fields} for i in indicators]}


class EventChecker:
    """Check each event against the protocol and the events before it."""

    def __init__(self) -> None:
        self.opened: dict[str, Any] | None = None
        self._remaining: list[int] = []

    def check(self, event: Any) -> dict[str, Any]:
        """Return a clean copy of one event, or raise ParserCrash."""
        kind = event.get("type") if isinstance(event, dict) else None
        if kind in ("warning", "error") or (kind == "done" and self.opened is not None):
            return self._check_message(event)
        if kind == "opened" and self.opened is None:
            self.opened = validate_opened(event)
            self._remaining = list(self.opened["selected"])
            return self.opened
        if kind == "security" and self.opened is not None:
            return validate_security(event)
        if kind in ("page", "page_failed") and self.opened is not None:
            self._check_page_number(event.get("page_number"))
            if kind == "page":
                return validate_page(event)
            if not isinstance(event.get("code"), str):
                raise _crash("bad page_failed code")
            return {"type": kind, "page_number": event["page_number"], "code": event["code"]}
        raise _crash(f"unexpected event type {kind!r}")

    def _check_message(self, event: dict[str, Any]) -> dict[str, Any]:
        fields = {"warning": ("message",), "error": ("code", "message"), "done": ()}
        names = fields[event["type"]]
        if not all(isinstance(event.get(name), str) for name in names):
            raise _crash(f"bad {event['type']} event")
        return {"type": event["type"], **{name: event[name] for name in names}}

    def _check_page_number(self, number: Any) -> None:
        # Pages must come in the announced order, each at most once.
        if not self._remaining or number != self._remaining[0]:
            raise _crash(f"page {number!r} was not expected next")
        self._remaining.pop(0)


class ExtractionProcess:
    """One parse in a child process: start it, read its events, kill it."""

    def __init__(self, request: ExtractRequest, python: str = sys.executable) -> None:
        self.request = request
        self._python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: StderrTail | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Start the child and send it the request."""
        if self._proc is not None:
            raise RuntimeError("the parse was already started")
        self._proc = subprocess.Popen(
            [self._python, "-m", "parse_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=PROJECT_DIR,
        )
        self._stderr = StderrTail(self._proc.stderr)
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.write(self.request.to_json().encode("utf-8"))
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()

    def events(self) -> Iterator[dict[str, Any]]:
        """Yield validated events until ``done``; raise the typed error otherwise."""
        if self._proc is None:
            self.start()
        outcome = "stopped"
        try:
            checker = EventChecker()
            for line in self._lines():
                event = checker.check(self._decode(line))
                if event["type"] == "error":
                    raise errors.extraction_error(event["code"], event["message"])
                if event["type"] == "done":
                    outcome = "done"
                    return
                yield event
            raise _crash("the child exited without done or error")
        except errors.ExtractionError:
            outcome = "failed"
            raise
        finally:
            self._reap(graceful=outcome == "done")
            if outcome == "failed":
                log.debug("parse child %s stderr:\n%s", self.pid, self.stderr_tail())

    def _lines(self) -> Iterator[bytes]:
        stdout = self._proc.stdout
        while line := stdout.readline(MAX_LINE_BYTES + 1):
            if not line.endswith(b"\n"):
                raise _crash("overlong or unterminated line")
            yield line

    @staticmethod
    def _decode(line: bytes) -> Any:
        try:
            return json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _crash("malformed line") from None

    def stderr_tail(self) -> str:
        """Return the last 64 KB the child wrote on stderr (waits up to 1 s for its end)."""
        return "" if self._stderr is None else self._stderr.text()

    def _reap(self, graceful: bool) -> None:
        if graceful:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(EXIT_GRACE_S)
        self.kill()
        self._close_pipes()

    def kill(self) -> None:
        """Kill the child's whole process group and reap it (idempotent)."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _close_pipes(self) -> None:
        # Only once nothing reads them: kill() may run on another thread mid-read.
        for pipe in (self._proc.stdin, self._proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        self._stderr.close()

    def __enter__(self) -> ExtractionProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
        if self._proc is not None:
            self._close_pipes()


def extract_all(request: ExtractRequest) -> dict[str, Any]:
    """Run one parse to the end and collect its events by kind."""
    result: dict[str, Any] = {"opened": None, "pages": [], "failed_pages": [], "warnings": []}
    with ExtractionProcess(request) as process:
        for event in process.events():
            if event["type"] == "opened":
                result["opened"] = event
            elif event["type"] == "page":
                result["pages"].append(event)
            elif event["type"] == "page_failed":
                result["failed_pages"].append(event)
            elif event["type"] == "security":
                result["security"] = event["indicators"]
            else:
                result["warnings"].append(event["message"])
    return result
