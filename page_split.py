"""Work in forked processes of the parse child: a share of a large document's pages, and
(``pdf_engines.MetadataProcess``) pypdf's metadata and structure walk.

pdfium is single-threaded (and not thread-safe), and pypdf is pure Python holding the GIL,
so a second core needs a second process. The parse child forks (``ForkedWork``) before it
starts any thread. A forked process stays in the child's session and process group, so the
parent's group kill ends it too, and it inherits the child's resource limits (its own
memory and CPU budget) and, through memory only, the request and its password. It writes
on a private pipe and never returns into the child's code.

The page helper (``ForkedHalf``) writes one JSON page event per line; a thread of the child
collects them by page number, and the child emits them in page order among its own. Pages are
not halved in advance: a ``PageDispenser`` hands the next page to whichever process is free,
so both stay busy to the end (with fixed halves the child, which also relays the helper's
pages, finished up to 160 ms after the helper on GeoTopo-komprimiert.pdf, BENCHMARKS.md). If
the helper dies, the child reads the pages it had not sent itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator

WAIT_S = 0.5
READ_BLOCK = 64 * 1024
PAGE_RECORD_BYTES = 4  # one page number, big-endian


class ForkedWork:
    """A forked process running ``work(write_fd)``, and the read end of its pipe."""

    def __init__(self, work: Callable[[int], None]) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the forked process: never returns into the child's code
            os.close(read_fd)
            status = 1
            try:
                work(write_fd)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        self.pid = pid
        self.read_fd = read_fd
        self._closed = False

    def output(self, timeout_s: float) -> bytes | None:
        """Return all the process wrote once it closes its pipe, or None after timeout_s."""
        deadline = time.monotonic() + timeout_s
        poller = select.poll()
        poller.register(self.read_fd, select.POLLIN)
        chunks = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                return None
            chunk = os.read(self.read_fd, READ_BLOCK)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def close(self) -> None:
        """Kill the process if it still runs, reap it and close the pipe (once)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        os.close(self.read_fd)


class ForkedHalf:
    """A forked helper running ``work(write_fd)``, and the page events it has sent."""

    def __init__(self, work: Callable[[int], None]) -> None:
        self._process = ForkedWork(work)
        self.pid = self._process.pid
        self._events: dict[object, dict] = {}
        self._ended = False
        self._changed = threading.Condition()
        # The thread reads its own copy of the read end, which close() cannot pull from under it.
        pipe = os.dup(self._process.read_fd)
        self._reader = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                try:
                    event = json.loads(line)
                    number = event["page_number"]
                except (ValueError, TypeError, KeyError):
                    break  # a helper that breaks the protocol is treated as dead
                with self._changed:
                    self._events[number] = event
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def take(self, number: int) -> dict | None:
        """Return (once) the helper's event for a page, or None if it has not sent it."""
        with self._changed:
            return self._events.pop(number, None)

    @property
    def ended(self) -> bool:
        """True once the helper's pipe has closed (it finished or died)."""
        with self._changed:
            return self._ended

    def wait(self) -> None:
        """Wait until the helper sends an event or ends (at most WAIT_S)."""
        with self._changed:
            if not self._ended:
                self._changed.wait(WAIT_S)

    def close(self) -> None:
        """Kill the helper if it still runs, and reap it."""
        self._process.close()
        self._reader.join(WAIT_S)


class PageDispenser:
    """The pages still to read, in a pipe of 4-byte page numbers that the child and its
    forked helper share; each process takes the next page when it is free.

    The whole list is written before the fork and the write end closed, so a read finds a
    record or the end. Linux reads a pipe under its lock, so a 4-byte read by one process
    never interleaves with another's: each page goes to exactly one of them. Nothing is
    held: a process killed mid-page loses only the page it took.
    """

    def __init__(self, read_fd: int) -> None:
        self._read_fd = read_fd

    @classmethod
    def create(cls, pages: list[int]) -> PageDispenser | None:
        """Return a dispenser of ``pages`` in order, or None if they do not fit in a pipe."""
        data = b"".join(number.to_bytes(PAGE_RECORD_BYTES, "big") for number in pages)
        read_fd, write_fd = os.pipe()
        try:
            os.set_blocking(write_fd, False)  # never block on a pipe nobody reads yet
            with contextlib.suppress(OSError):
                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, max(len(data), 4096))
            written = os.write(write_fd, data)
        except BlockingIOError:
            written = -1
        finally:
            os.close(write_fd)
        if written != len(data):
            os.close(read_fd)
            return None
        return cls(read_fd)

    def take(self) -> int | None:
        """Return the next page nobody has taken, or None when none is left."""
        record = os.read(self._read_fd, PAGE_RECORD_BYTES)
        return int.from_bytes(record, "big") if len(record) == PAGE_RECORD_BYTES else None

    def close(self) -> None:
        """Close this process's end of the pipe."""
        os.close(self._read_fd)


def merged_events(
    pages: list[int],
    own_event: Callable[[int], dict],
    helper: ForkedHalf,
    dispenser: PageDispenser,
) -> Iterator[dict]:
    """Yield the events of ``pages`` (the dispenser's) in order, each read by whichever
    process took it; waiting for one of the helper's pages, the child reads the next free
    page meanwhile."""
    ready: dict[int, dict] = {}
    for number in pages:
        event = ready.pop(number, None)
        while event is None:
            event = helper.take(number)
            if event is not None:
                break
            if helper.ended:
                # It finished or died without this page: read it here, and from now on
                # every page neither process has read (the pipe is not touched again).
                event = helper.take(number) or own_event(number)
            elif (claimed := dispenser.take()) is not None:
                ready[claimed] = own_event(claimed)
                event = ready.pop(number, None)
            else:
                helper.wait()
        yield event
