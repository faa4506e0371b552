"""A fork server ("zygote") for parse children: import the parsers once, fork one child per job.

Starting Python and importing pypdfium2 and pypdf costs ~0.17 s of CPU. A warm spare child
moved that off a job's critical path but still paid it once per job, on the same cores as the
next job. The zygote pays it once per gunicorn worker: it sets the child limits, imports the
parsers, then waits on a Unix socket. For each job the worker sends three pipe ends (the
child's stdin, stdout and stderr) with ``SCM_RIGHTS``; the zygote forks (a few ms), the child
takes the pipes as fds 0-2, becomes the leader of its own process group (so the worker's
``killpg`` ends it and its helpers), and runs the parse exactly as a spawned child would.

The zygote never opens a PDF; it only forks, reaps, and reports on the socket, one line each:

- ``P <pid>``: the child forked for the oldest outstanding request;
- ``X <pid> <code>``: that child ended (``code`` as ``Popen.returncode``: -N for signal N).

``ForkedChild`` gives the worker a ``subprocess.Popen``-like handle (pid, pipes, ``poll``,
``wait``, ``returncode``). When the zygote itself dies, its live children are killed and
report ``ZYGOTE_LOST``; the next fork starts a new zygote. This module imports no parser.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO

log = logging.getLogger(__name__)

FORK_REQUEST = b"F"
REPLY_TIMEOUT_S = 30.0  # a fork takes ms; the first waits for the zygote's imports
# The exit code of a child whose zygote died before reporting it: not a signal, so the
# parent names it a parser crash (never a memory or CPU limit it cannot know about).
ZYGOTE_LOST = 250


class ForkServerError(RuntimeError):
    """The zygote could not fork a child (it died, or did not answer in time)."""


class ForkedChild:
    """A child forked by the zygote, looking like ``subprocess.Popen`` to its parent."""

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._ended = threading.Event()

    def ended(self, code: int) -> None:
        """Record the exit code the zygote reported."""
        self.returncode = code
        self._ended.set()

    def poll(self) -> int | None:
        """Return the exit code, or None while the child runs."""
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child's end; raise ``subprocess.TimeoutExpired`` after ``timeout``."""
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout or 0.0)
        return self.returncode


class ForkServer:
    """The worker's side: start the zygote (on ``start`` or first use), ask it for children,
    track them."""

    def __init__(self, argv: list[str], cwd: str | None = None) -> None:
        self._argv = argv  # the zygote's command; ``--control-fd N`` is appended
        self._cwd = cwd
        self._lock = threading.Lock()  # one fork request in flight: replies come in order
        self._zygote: _Zygote | None = None
        self._closed = False

    def start(self) -> None:
        """Start the zygote now, unless it runs: it imports the parsers in its own process,
        so the first fork does not wait for them."""
        with self._lock:
            if not self._closed:
                self._running_zygote()

    def fork(self) -> ForkedChild:
        """Return a freshly forked child waiting for its request on stdin."""
        with self._lock:
            if self._closed:
                raise ForkServerError("the fork server is closed")
            return self._running_zygote().fork()

    def _running_zygote(self) -> _Zygote:
        """Return the live zygote, starting one if there is none (call with the lock held)."""
        if self._zygote is None or not self._zygote.alive:
            if self._zygote is not None:
                self._zygote.close()
            self._zygote = _Zygote(self._argv, self._cwd)
        return self._zygote

    @property
    def zygote_pid(self) -> int | None:
        """Return the running zygote's pid, or None before the first fork."""
        zygote = self._zygote
        return zygote.pid if zygote is not None and zygote.alive else None

    def close(self) -> None:
        """Stop the zygote; it kills the children it still has."""
        with self._lock:
            self._closed = True
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()


class _Zygote:
    """One running zygote process, its control socket and the reader of its reports."""

    def __init__(self, argv: list[str], cwd: str | None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = subprocess.Popen(
                [*argv, "--control-fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=cwd,
            )
        finally:
            theirs.close()
        self.pid = self._proc.pid
        self._sock = ours
        self._children: dict[int, ForkedChild] = {}
        self._early_exits: dict[int, int] = {}  # X lines read before fork() took the child
        self._pids: queue.Queue[int | None] = queue.Queue()
        self._lock = threading.Lock()
        self.alive = True
        self._reader = threading.Thread(target=self._read, name="forkserver", daemon=True)
        self._reader.start()

    def fork(self) -> ForkedChild:
        """Send a request with the child's three pipe ends; return the child once forked."""
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        theirs, ours = (stdin_r, stdout_w, stderr_w), (stdin_w, stdout_r, stderr_r)
        try:
            socket.send_fds(self._sock, [FORK_REQUEST], list(theirs))
            pid = self._pids.get(timeout=REPLY_TIMEOUT_S)  # None: the zygote ended
        except (OSError, queue.Empty):
            pid = None
            self.close()  # it did not answer: the next fork starts a new zygote
        finally:
            for fd in theirs:
                os.close(fd)
        if pid is None:
            for fd in ours:
                os.close(fd)
            raise ForkServerError("the fork server did not fork a child")
        child = ForkedChild(
            pid, os.fdopen(stdin_w, "wb"), os.fdopen(stdout_r, "rb"), os.fdopen(stderr_r, "rb")
        )
        with self._lock:
            code = self._early_exits.pop(pid, None)
            if code is None:
                self._children[pid] = child
        if code is not None:
            child.ended(code)
        return child

    def _read(self) -> None:
        with contextlib.suppress(OSError), self._sock.makefile("rb") as lines:
            for line in lines:
                self._report(line.split())
        self._lost()

    def _report(self, words: list[bytes]) -> None:
        if len(words) == 2 and words[0] == b"P":
            self._pids.put(int(words[1]))
        elif len(words) == 3 and words[0] == b"X":
            pid, code = int(words[1]), int(words[2])
            with self._lock:
                child = self._children.pop(pid, None)
                if child is None:
                    self._early_exits[pid] = code
            if child is not None:
                child.ended(code)

    def _lost(self) -> None:
        """The zygote's socket ended: kill what it left running and release every waiter."""
        self.alive = False
        self._pids.put(None)
        with self._lock:
            orphans, self._children = self._children, {}
        for pid, child in orphans.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            child.ended(ZYGOTE_LOST)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5.0)
        self._sock.close()

    def close(self) -> None:
        """End the zygote: closing its socket makes it kill its children and exit."""
        self.alive = False
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        try:
            self._proc.wait(5.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self._reader.join(5.0)
        self._sock.close()


# The zygote's side.


def serve(control_fd: int, run_child: Callable[[], int]) -> int:
    """Run the zygote loop on ``control_fd``; each forked child runs ``run_child()``."""
    control = socket.socket(fileno=control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
    signal.set_wakeup_fd(wake_w)
    children: set[int] = set()
    with selectors.DefaultSelector() as selector:
        selector.register(control, selectors.EVENT_READ, "control")
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        while True:
            for key, _ in selector.select():
                if key.data == "wake":
                    _drain(wake_r)
                    _reap(control, children)
                    continue
                fds = _receive(control)
                if fds is None:  # the worker went away: so do we, and our children
                    _kill_all(children)
                    return 0
                _flush_std_streams()  # or the child would write the zygote's leftovers
                pid = os.fork()
                if pid == 0:
                    _become_child(fds, control, selector, (wake_r, wake_w), run_child)
                # The child does this too; whichever runs first, the group exists before
                # the worker learns the pid and may kill it.
                with contextlib.suppress(OSError):
                    os.setpgid(pid, pid)
                children.add(pid)
                for fd in fds:
                    os.close(fd)
                _send(control, f"P {pid}\n")
            _reap(control, children)


def _receive(control: socket.socket) -> list[int] | None:
    """Read one fork request's three fds; None when the worker closed the socket."""
    try:
        message, fds, _, _ = socket.recv_fds(control, 1, 3)
    except OSError:
        return None
    if message != FORK_REQUEST or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return None
    return fds


def _become_child(
    fds: list[int],
    control: socket.socket,
    selector: selectors.BaseSelector,
    wake: tuple[int, int],
    run_child: Callable[[], int],
) -> None:
    """In the forked child: take the pipes as fds 0-2, drop the zygote's fds and signal
    handling, run; never return into the zygote's loop."""
    code = 1
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        selector.close()  # closes only this copy of the epoll fd; the zygote keeps its own
        os.close(control.detach())
        for fd in wake:
            os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        code = run_child()
    finally:
        os._exit(code)


def _reap(control: socket.socket, children: set[int]) -> None:
    """Collect every ended child and report its exit code."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        _send(control, f"X {pid} {os.waitstatus_to_exitcode(status)}\n")


def _send(control: socket.socket, line: str) -> None:
    with contextlib.suppress(OSError):
        control.sendall(line.encode("ascii"))


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        os.read(fd, 4096)


def _kill_all(children: set[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
