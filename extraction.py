"""Run one PDF parse in a child process (``python -m parse_child``) and read its events.

The child is forked from this worker's zygote (``forkserver``; ``ChildLauncher``) or, without
one, spawned as a fresh interpreter (``spawn_child``); either way it is a process group of
its own that ``ExtractionProcess`` kills whole.

The child gets the request as one JSON object on stdin (never argv: it holds the password)
and writes one JSON event per line on stdout:

- ``opened``: pages_total, selected (1-based page numbers), metadata, engine
- ``page``: page_number, text, engine, and ``tables`` when tables were requested
- ``page_failed``: page_number, code
- ``metadata``: metadata (at most once, after ``opened``: the final metadata, read by pypdf
  in a forked process while pdfium read the pages; ``opened`` then carried pdfium's reading)
- ``warning``: message
- ``security`` (once, after ``opened``): indicators of the structure walk (riskscan)
- last, ``done`` or ``error`` (code, message)

The child's output is untrusted: every line is size-capped and validated (``child_events``),
and anything unexpected ends the parse as ``ParserCrash``. No parser library is imported here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import errors
from child_events import EventChecker, crash
from config import Settings
from forkserver import ForkedChild, ForkServer, ForkServerError

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent
# A page's text is capped downstream, but one raw page (plus its tables) can be large.
MAX_LINE_BYTES = 16 * 1024 * 1024
STDERR_TAIL_BYTES = 64 * 1024
EXIT_GRACE_S = 5.0
CLOCK_TICK_S = 0.5
READ_BLOCK = 1024 * 1024
EVENT_PIPE_BYTES = 1024 * 1024
# pdfium ends the process on a failed allocation (abort, or a trap instruction): with
# RLIMIT_AS set, these signals mean the document needed more memory than allowed.
# SIGKILL that the parent did not send comes from the kernel's out-of-memory killer.
OOM_SIGNALS = frozenset({signal.SIGABRT, signal.SIGILL, signal.SIGTRAP, signal.SIGKILL})
MEMORY_WORDS = ("MemoryError", "out of memory", "Out of memory", "bad_alloc", "Cannot allocate")


@dataclass(frozen=True)
class ExtractRequest:
    path: str
    password: str | None = None
    pages: list[tuple[int, int]] | None = None
    extract_type: str = "all"
    include_tables: bool = False
    max_pages: int = 10000
    split_min_pages: int = 0  # 0 = never read pages in a second process

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
                "split_min_pages": self.split_min_pages,
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


@dataclass(frozen=True)
class ChildLimits:
    """Resource limits and clocks of one parse child (see README: Parser isolation)."""

    memory_mb: int = 1536
    cpu_s: int = 900
    open_files: int = 64
    open_timeout_s: float = 60.0
    timeout_s: float | None = None  # a fixed total; None = scaled by the page count
    timeout_per_page_s: float = 1.0
    timeout_floor_s: float = 60.0
    timeout_ceiling_s: float = 600.0
    stall_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ChildLimits:
        """Build the limits from the EXTRACT_* settings."""
        return cls(
            memory_mb=settings.extract_memory_mb,
            cpu_s=settings.extract_cpu_s,
            open_files=settings.extract_open_files,
            open_timeout_s=settings.extract_open_timeout_s,
            timeout_s=settings.extract_timeout_s,
            timeout_per_page_s=settings.extract_timeout_per_page_s,
            timeout_floor_s=settings.extract_timeout_floor_s,
            timeout_ceiling_s=settings.extract_timeout_ceiling_s,
            stall_s=settings.extract_stall_s,
        )

    def total_timeout(self, pages: int | None) -> float:
        """Return the wall-clock budget of a parse of ``pages`` pages (None: not opened yet)."""
        if pages is None:
            return self.open_timeout_s
        if self.timeout_s is not None:
            return self.timeout_s
        scaled = pages * self.timeout_per_page_s
        return min(max(self.timeout_floor_s, scaled), self.timeout_ceiling_s)

    def argv(self) -> list[str]:
        """Return the child's limit arguments (no secret: the request goes on stdin)."""
        return [
            "--memory-mb", str(self.memory_mb),
            "--cpu-s", str(self.cpu_s),
            "--open-files", str(self.open_files),
        ]  # fmt: skip


def spawn_child(limits: ChildLimits, python: str = sys.executable) -> subprocess.Popen[bytes]:
    """Start a parse child in its own session, waiting for its request on stdin."""
    # The child sets its limits and imports the parsers before it reads the request.
    return subprocess.Popen(
        [python, "-m", "parse_child", "--warm", *limits.argv()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        cwd=PROJECT_DIR,
    )


def widen_pipe(fd: int) -> None:
    """Give the child's event pipe room for many pages (Linux; a no-op elsewhere)."""
    # With the default 64 KB a parent busy for a moment (a poll holding the GIL) blocks the
    # child's next write, and pdfium sits idle; 1 MB is the unprivileged maximum.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, EVENT_PIPE_BYTES)


class ChildLauncher:
    """Starts each job's parse child: forked from this worker's zygote (``forkserver``), or,
    with ``fork_server=False`` or when the zygote cannot fork, a freshly spawned interpreter."""

    def __init__(
        self, limits: ChildLimits, fork_server: bool = True, python: str = sys.executable
    ) -> None:
        self.limits = limits
        self._python = python
        # The zygote starts on ``start_zygote`` (gunicorn calls it once the worker is ready)
        # or with the first parse, not at construction: a gunicorn worker being booted
        # would share the CPU with its imports.
        self._server = (
            ForkServer([python, "-m", "parse_child", *limits.argv()], cwd=str(PROJECT_DIR))
            if fork_server
            else None
        )

    def start_zygote(self) -> None:
        """Start the zygote ahead of the first parse (no-op without the fork server)."""
        if self._server is not None:
            self._server.start()

    def launch(self) -> subprocess.Popen[bytes] | ForkedChild:
        """Return a child waiting for its request on stdin."""
        if self._server is not None:
            try:
                return self._server.fork()
            except ForkServerError:
                log.warning("the parse fork server failed; spawning a child", exc_info=True)
        return spawn_child(self.limits, self._python)

    @property
    def zygote_pid(self) -> int | None:
        """Return the zygote's pid while it runs."""
        return None if self._server is None else self._server.zygote_pid

    def close(self) -> None:
        """Stop the zygote (it kills the children it still has)."""
        if self._server is not None:
            self._server.close()


class Clocks:
    """The parent's two clocks: a total wall budget and a no-new-page (stall) budget."""

    def __init__(self, limits: ChildLimits) -> None:
        self._limits = limits
        self._start = time.monotonic()
        self._pages: int | None = None
        self._last_progress = self._start

    def opened(self, pages: int) -> None:
        """Scale the total budget to the selected pages; start the stall clock."""
        self._pages = pages
        self._last_progress = time.monotonic()

    def progressed(self) -> None:
        """A page arrived."""
        self._last_progress = time.monotonic()

    def next_deadline(self) -> tuple[float, errors.ExtractionError]:
        """Return the earliest deadline and the error it raises when passed."""
        total = self._start + self._limits.total_timeout(self._pages)
        timeout = errors.ExtractTimeout(
            "Opening the PDF took too long." if self._pages is None else None
        )
        if self._pages is None:
            return total, timeout
        stall = self._last_progress + self._limits.stall_s
        if stall < total:
            return stall, errors.Stalled(
                f"No new page was read for {self._limits.stall_s:g} seconds; extraction stopped."
            )
        return total, timeout


class ExtractionProcess:
    """One parse in a child process: start it, read its events under two clocks, kill it."""

    def __init__(
        self,
        request: ExtractRequest,
        python: str = sys.executable,
        limits: ChildLimits | None = None,
        launcher: ChildLauncher | None = None,
    ) -> None:
        self.request = request
        self._python = python
        self.limits = limits or (launcher.limits if launcher else ChildLimits())
        self._launcher = launcher
        self._proc: subprocess.Popen[bytes] | ForkedChild | None = None
        self._stderr: StderrTail | None = None
        self._killed = False  # by kill() from outside (cancel), not by the clocks
        self._clocks: Clocks | None = None

    @property
    def pid(self) -> int | None:
        """Return the child's pid, or None before it starts."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Start (fork from the zygote, or spawn) the child and send it the request."""
        if self._proc is not None:
            raise RuntimeError("the parse was already started")
        if self._launcher is not None:
            self._proc = self._launcher.launch()
        else:
            self._proc = spawn_child(self.limits, self._python)
        widen_pipe(self._proc.stdout.fileno())
        self._clocks = Clocks(self.limits)
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
                self._tick(event)
                yield event
            raise self._death_error()
        except errors.ExtractionError:
            outcome = "failed"
            raise
        finally:
            self._reap()
            if outcome == "failed":
                log.debug("parse child %s stderr:\n%s", self.pid, self.stderr_tail())

    def _tick(self, event: dict[str, Any]) -> None:
        if event["type"] == "opened":
            self._clocks.opened(len(event["selected"]))
        elif event["type"] in ("page", "page_failed"):
            self._clocks.progressed()

    def _lines(self) -> Iterator[bytes]:
        """Yield the child's lines as they come, raising a clock's error when it runs out."""
        fd = self._proc.stdout.fileno()
        buffer = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                end = buffer.find(b"\n", 0, MAX_LINE_BYTES)
                if end >= 0:
                    line = bytes(buffer[: end + 1])
                    del buffer[: end + 1]
                    yield line
                    continue
                if len(buffer) >= MAX_LINE_BYTES:
                    raise crash("overlong line")
                if not self._read_some(fd, selector, buffer):
                    if buffer:
                        raise crash("unterminated line")
                    return

    def _read_some(self, fd: int, selector: selectors.BaseSelector, buffer: bytearray) -> bool:
        """Read what the child wrote into ``buffer``; return False at end of output."""
        while True:
            deadline, error = self._clocks.next_deadline()
            wait = deadline - time.monotonic()
            if wait <= 0:
                self.kill(by_clock=True)
                raise error
            if selector.select(min(wait, CLOCK_TICK_S)):
                try:
                    chunk = os.read(fd, READ_BLOCK)
                except OSError:
                    return False
                buffer += chunk
                return bool(chunk)

    def _death_error(self) -> errors.ExtractionError:
        """Name why the child ended without ``done`` or ``error``."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(EXIT_GRACE_S)
        if self._killed:
            return errors.Cancelled()
        code = self._proc.returncode
        tail = self.stderr_tail()
        if code is not None and code < 0 and -code == signal.SIGXCPU:
            return errors.ExtractTimeout("The parser used more CPU time than allowed.")
        if (code is not None and code < 0 and -code in OOM_SIGNALS) or _mentions_memory(tail):
            return errors.MemoryLimit()
        return crash(f"the child exited with {code} without done or error")

    @staticmethod
    def _decode(line: bytes) -> Any:
        try:
            return json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise crash("malformed line") from None

    def stderr_tail(self) -> str:
        """Return the last 64 KB the child wrote on stderr (waits up to 1 s for its end)."""
        return "" if self._stderr is None else self._stderr.text()

    def _reap(self) -> None:
        # After ``done`` the child has nothing left to say: killing it at once spares the
        # job its interpreter teardown (~0.15 s with pdfium loaded).
        self.kill(by_clock=True)
        self._close_pipes()

    def kill(self, by_clock: bool = False) -> None:
        """Kill the child's whole process group and reap it (idempotent)."""
        # A kill from outside the parse (a cancel) makes events() raise Cancelled.
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None and proc.poll() is None:
            self._killed = self._killed or not by_clock
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
        self.kill(by_clock=True)
        if self._proc is not None:
            self._close_pipes()


def _mentions_memory(stderr: str) -> bool:
    return any(word in stderr for word in MEMORY_WORDS)


def extract_all(request: ExtractRequest) -> dict[str, Any]:
    """Run one parse to the end and collect its events by kind."""
    result: dict[str, Any] = {"opened": None, "pages": [], "failed_pages": [], "warnings": []}
    with ExtractionProcess(request) as process:
        for event in process.events():
            if event["type"] == "opened":
                result["opened"] = event
            elif event["type"] == "metadata":
                result["opened"] = {**result["opened"], "metadata": event["metadata"]}
            elif event["type"] == "page":
                result["pages"].append(event)
            elif event["type"] == "page_failed":
                result["failed_pages"].append(event)
            elif event["type"] == "security":
                result["security"] = event["indicators"]
            else:
                result["warnings"].append(event["message"])
    return result
