"""The parse fork server: one zygote per launcher forks a fresh, limited child per parse; a
child's death, a kill and the zygote's own death each end in a typed outcome, never a hang."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from pathlib import Path

import pytest

import errors
from extraction import (
    EVENT_PIPE_BYTES,
    ChildLauncher,
    ChildLimits,
    ExtractionProcess,
    ExtractRequest,
)
from forkserver import ZYGOTE_LOST
from tests import hostile_pdfs

LIMITS = ChildLimits(memory_mb=512, cpu_s=60, stall_s=3, open_timeout_s=20, timeout_floor_s=20)


@pytest.fixture
def launcher():
    """A launcher with its own zygote, stopped after the test."""
    launcher = ChildLauncher(LIMITS)
    yield launcher
    launcher.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """The generated hostile files these tests use."""
    directory = tmp_path_factory.mktemp("hostile-fork")
    for name in ("flate_bomb", "spinning_page"):
        (directory / f"{name}.pdf").write_bytes(hostile_pdfs.GENERATORS[name]())
    return directory


def parse(launcher: ChildLauncher, path: Path, limits: ChildLimits = LIMITS):
    """Run one parse through the launcher; return (events, the error that ended it or None)."""
    events: list[dict] = []
    with ExtractionProcess(ExtractRequest(str(path)), limits=limits, launcher=launcher) as child:
        try:
            events.extend(child.events())
        except errors.ExtractionError as error:
            return events, error
    return events, None


def stat_fields(pid: int) -> list[str]:
    """Return /proc/<pid>/stat's fields after the command name (state is index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def limit_of(pid: int, name: str) -> str:
    """Return the soft value of one /proc/<pid>/limits row."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            return line[len(name) :].split()[0]
    raise LookupError(name)


def is_gone(pid: int) -> bool:
    """True once the process no longer exists (or is a zombie awaiting its reaper)."""
    try:
        return stat_fields(pid)[0] == "Z"
    except FileNotFoundError:
        return True


def close_pipes(child) -> None:
    for pipe in (child.stdin, child.stdout, child.stderr):
        pipe.close()


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_children_are_forked_group_leaders_with_the_child_limits(launcher):
    child = launcher.launch()
    try:
        zygote = launcher.zygote_pid
        parent, group = int(stat_fields(child.pid)[1]), int(stat_fields(child.pid)[2])
        assert parent == zygote
        assert group == child.pid  # the worker's killpg reaches it and its helpers
        assert limit_of(child.pid, "Max address space") == str(512 * 1024 * 1024)
        # Set by the child itself right after the fork, before it reads its request.
        assert wait_until(lambda: limit_of(child.pid, "Max cpu time") == "60", 5)
        assert limit_of(child.pid, "Max file size") == "0"
        assert limit_of(child.pid, "Max core file size") == "0"
        assert limit_of(zygote, "Max cpu time") == "unlimited"  # each child has its own
    finally:
        child.stdin.close()  # no request: the child exits 0
        assert child.wait(10) == 0
        close_pipes(child)


def test_each_parse_gets_a_fresh_child_and_the_same_zygote(launcher, corpus):
    path = corpus / "clean/pdflatex-4-pages.pdf"
    pids, zygotes = set(), set()
    for _ in range(3):
        with ExtractionProcess(ExtractRequest(str(path)), launcher=launcher) as child:
            child.start()
            pids.add(child.pid)
            zygotes.add(launcher.zygote_pid)
            assert [e["type"] for e in child.events()].count("page") == 4
    assert len(pids) == 3
    assert len(zygotes) == 1


def test_a_started_zygote_serves_the_first_parse(corpus):
    launcher = ChildLauncher(LIMITS)
    try:
        assert launcher.zygote_pid is None  # none until started or the first parse
        launcher.start_zygote()
        zygote = launcher.zygote_pid
        assert zygote is not None
        launcher.start_zygote()  # already running: no second zygote
        assert launcher.zygote_pid == zygote
        events, error = parse(launcher, corpus / "clean/pdflatex-4-pages.pdf")
        assert error is None and [e["type"] for e in events].count("page") == 4
        assert launcher.zygote_pid == zygote
    finally:
        launcher.close()
    launcher.start_zygote()  # a closed launcher starts nothing
    assert launcher.zygote_pid is None


def test_a_split_parse_matches_a_spawned_one(launcher, corpus):
    request = ExtractRequest(str(corpus / "clean/freeculture.pdf"), split_min_pages=32)
    with ExtractionProcess(request, launcher=launcher) as forked:
        forked_pages = [e["text"] for e in forked.events() if e["type"] == "page"]
    with ExtractionProcess(request) as spawned:
        spawned_pages = [e["text"] for e in spawned.events() if e["type"] == "page"]
    assert len(forked_pages) == 352
    assert forked_pages == spawned_pages


def test_memory_limit_in_a_forked_child_leaves_the_zygote_serving(launcher, hostile, corpus):
    events, error = parse(launcher, hostile / "flate_bomb.pdf")
    assert isinstance(error, errors.MemoryLimit)
    assert [e["page_number"] for e in events if e["type"] == "page"] == [1]
    zygote = launcher.zygote_pid
    events, error = parse(launcher, corpus / "clean/pdflatex-4-pages.pdf")
    assert error is None
    assert launcher.zygote_pid == zygote


def test_cpu_limit_of_a_forked_child_is_reported_as_a_timeout(launcher, hostile):
    limits = ChildLimits(memory_mb=512, cpu_s=2, timeout_s=120, stall_s=120)
    cpu_launcher = ChildLauncher(limits)
    try:
        _, error = parse(cpu_launcher, hostile / "spinning_page.pdf", limits)
    finally:
        cpu_launcher.close()
    assert isinstance(error, errors.ExtractTimeout)
    assert "CPU" in error.message


def test_kill_from_another_thread_cancels_a_forked_child(launcher, hostile):
    request = ExtractRequest(str(hostile / "spinning_page.pdf"))
    with ExtractionProcess(request, limits=LIMITS, launcher=launcher) as process:
        events = process.events()
        assert next(events)["type"] == "opened"
        threading.Timer(0.3, process.kill).start()
        with pytest.raises(errors.Cancelled):
            list(events)
        assert wait_until(lambda: is_gone(process.pid), 5)


def test_a_dead_zygote_fails_its_running_parse_and_is_replaced(launcher, hostile, corpus):
    request = ExtractRequest(str(hostile / "spinning_page.pdf"))
    limits = ChildLimits(memory_mb=512, stall_s=60)
    with ExtractionProcess(request, limits=limits, launcher=launcher) as process:
        events = process.events()
        assert next(events)["type"] == "opened"
        zygote = launcher.zygote_pid
        os.kill(zygote, signal.SIGKILL)
        with pytest.raises(errors.ParserCrash):
            list(events)
        assert process._proc.returncode == ZYGOTE_LOST  # not a signal: no limit is claimed
        assert wait_until(lambda: is_gone(process.pid), 5)
    _, error = parse(launcher, corpus / "clean/pdflatex-4-pages.pdf")
    assert error is None
    assert launcher.zygote_pid not in (None, zygote)


def test_closing_the_launcher_ends_the_zygote_and_its_children(hostile):
    launcher = ChildLauncher(LIMITS)
    child = launcher.launch()
    zygote = launcher.zygote_pid
    launcher.close()  # as when the worker exits: the zygote's socket closes
    assert wait_until(lambda: is_gone(child.pid), 5)
    assert wait_until(lambda: is_gone(zygote), 5)
    assert child.wait(5) is not None
    close_pipes(child)


def test_without_the_fork_server_each_child_is_spawned(corpus):
    launcher = ChildLauncher(LIMITS, fork_server=False)
    request = ExtractRequest(str(corpus / "clean/pdflatex-4-pages.pdf"))
    with ExtractionProcess(request, launcher=launcher) as process:
        process.start()
        assert int(stat_fields(process.pid)[1]) == os.getpid()
        assert [e["type"] for e in process.events()].count("page") == 4
    assert launcher.zygote_pid is None


@pytest.mark.parametrize("fork_server", [True, False])
def test_the_event_pipe_holds_many_pages(corpus, fork_server):
    launcher = ChildLauncher(LIMITS, fork_server=fork_server)
    request = ExtractRequest(str(corpus / "clean/pdflatex-4-pages.pdf"))
    try:
        with ExtractionProcess(request, launcher=launcher) as process:
            process.start()
            size = fcntl.fcntl(process._proc.stdout.fileno(), fcntl.F_GETPIPE_SZ)
            assert size == EVENT_PIPE_BYTES
            assert [e["type"] for e in process.events()].count("page") == 4
    finally:
        launcher.close()
