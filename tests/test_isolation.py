"""Parser isolation: hostile PDFs end in their typed outcome within their limits, in real
child processes, and through real gunicorn (2 workers, real Redis) while /health answers."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

import errors
from extraction import ChildLauncher, ChildLimits, ExtractionProcess, ExtractRequest
from tests import hostile_pdfs
from tests.servers import GunicornServer

# Generous wall-clock bounds (a loaded 2-core machine): limits + 3x slack.
SMALL = ChildLimits(
    memory_mb=512, cpu_s=60, open_timeout_s=20, timeout_floor_s=20, timeout_ceiling_s=20,
    stall_s=3,
)  # fmt: skip
KNOWN_CODES = set(errors.EXTRACTION_ERRORS)
HEALTH_UPPER_BOUND_S = 5.0


@pytest.fixture(scope="session")
def hostile_dir(tmp_path_factory) -> Path:
    """Write every generated hostile file once per session."""
    directory = tmp_path_factory.mktemp("hostile")
    for name, generate in hostile_pdfs.GENERATORS.items():
        (directory / f"{name}.pdf").write_bytes(generate())
    return directory


def collect(path: Path, limits: ChildLimits, **options) -> tuple[list[dict], Exception | None]:
    """Run one parse; return its events and the error that ended it (None on done)."""
    events: list[dict] = []
    with ExtractionProcess(ExtractRequest(str(path), **options), limits=limits) as process:
        try:
            events.extend(process.events())
        except errors.ExtractionError as error:
            return events, error
    return events, None


def pages_of(events: list[dict]) -> list[int]:
    return [e["page_number"] for e in events if e["type"] == "page"]


def timed(function, *args, **kwargs):
    start = time.monotonic()
    result = function(*args, **kwargs)
    return time.monotonic() - start, result


def test_flate_bomb_hits_the_memory_limit_after_page_one(hostile_dir):
    seconds, (events, error) = timed(collect, hostile_dir / "flate_bomb.pdf", SMALL)
    assert isinstance(error, errors.MemoryLimit)
    assert pages_of(events) == [1]
    assert seconds < 60


def test_spinning_first_page_stalls_with_nothing_to_keep(hostile_dir):
    seconds, (events, error) = timed(collect, hostile_dir / "spinner_first.pdf", SMALL)
    assert isinstance(error, errors.Stalled)
    assert [e["type"] for e in events] == ["opened"]
    assert seconds < SMALL.stall_s * 3 + 15


def test_spinning_page_stalls_after_page_one(hostile_dir):
    seconds, (events, error) = timed(collect, hostile_dir / "spinning_page.pdf", SMALL)
    assert isinstance(error, errors.Stalled)
    assert pages_of(events) == [1]
    assert seconds < SMALL.stall_s * 3 + 15


def test_total_timeout_wins_when_shorter_than_the_stall_clock(hostile_dir):
    limits = ChildLimits(memory_mb=512, timeout_s=2, stall_s=30)
    seconds, (_, error) = timed(collect, hostile_dir / "spinning_page.pdf", limits)
    assert isinstance(error, errors.ExtractTimeout)
    assert seconds < 2 * 3 + 15


def test_open_timeout_applies_before_the_page_count_is_known(hostile_dir):
    # A metadata-only parse of a PDF without /Title reads page 1 (it spins) to infer one
    # before ``opened``.
    limits = ChildLimits(memory_mb=512, open_timeout_s=2, stall_s=30)
    path = hostile_dir / "spinner_first.pdf"
    seconds, (events, error) = timed(collect, path, limits, extract_type="metadata")
    assert isinstance(error, errors.ExtractTimeout)
    assert events == []
    assert seconds < 2 * 3 + 15


def test_cpu_limit_ends_a_spinning_child(hostile_dir):
    limits = ChildLimits(memory_mb=512, cpu_s=2, timeout_s=120, stall_s=120)
    seconds, (_, error) = timed(collect, hostile_dir / "spinning_page.pdf", limits)
    assert isinstance(error, errors.ExtractTimeout)
    assert "CPU" in error.message
    assert seconds < 60


def test_kill_from_another_thread_is_cancelled(hostile_dir):
    path = hostile_dir / "spinning_page.pdf"
    with ExtractionProcess(ExtractRequest(str(path)), limits=ChildLimits(stall_s=120)) as process:
        events = process.events()
        assert next(events)["type"] == "opened"
        threading.Timer(0.5, process.kill).start()
        with pytest.raises(errors.Cancelled):
            list(events)


@pytest.mark.parametrize(
    ("name", "outcome"),
    [
        ("nested_arrays", None),
        ("xref_prev_loop", None),
        ("many_pages", "too_many_pages"),
        ("random_after_header", "corrupt_pdf"),
    ],
)
def test_structural_attacks_end_in_their_outcome(hostile_dir, name, outcome):
    seconds, (_, error) = timed(collect, hostile_dir / f"{name}.pdf", SMALL, max_pages=10000)
    assert (error.code if error else None) == outcome
    assert seconds < 30


def test_every_truncation_ends_in_done_or_a_typed_error(corpus, tmp_path):
    data = (corpus / "clean/pdflatex-4-pages.pdf").read_bytes()
    for percent, head in hostile_pdfs.truncations(data):
        path = tmp_path / f"cut-{percent}.pdf"
        path.write_bytes(head)
        seconds, (_, error) = timed(collect, path, SMALL)
        assert error is None or error.code in KNOWN_CODES, (percent, error)
        assert seconds < 30


def test_launcher_forks_each_job_a_fresh_child_of_one_zygote(corpus):
    launcher = ChildLauncher(ChildLimits())
    try:
        assert launcher.zygote_pid is None  # none until the first parse
        request = ExtractRequest(str(corpus / "clean/pdflatex-4-pages.pdf"))
        pids = []
        for _ in range(2):
            with ExtractionProcess(request, launcher=launcher) as process:
                process.start()
                pids.append(process.pid)
                assert parent_of(process.pid) == launcher.zygote_pid
                assert [e["type"] for e in process.events()].count("page") == 4
        assert pids[0] != pids[1]
    finally:
        launcher.close()


def parent_of(pid: int) -> int:
    """Return a process's parent pid, from /proc."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


# Through the real service: 2 gunicorn workers, real Redis, small limits.
HTTP_CASES = [
    # (file, status, error_code, partial, failed page code)
    ("flate_bomb", "completed", None, True, "memory_limit"),
    ("spinning_page", "completed", None, True, "stalled"),
    ("spinner_first", "failed", "stalled", False, None),
    ("nested_arrays", "completed", None, False, None),
    ("many_pages", "failed", "too_many_pages", False, None),
    ("xref_prev_loop", "completed", None, False, None),
    ("random_after_header", "failed", "corrupt_pdf", False, None),
]


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("iso")
    uploads = tmp / "uploads"
    uploads.mkdir()
    env = {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"pdfx-iso-{int(time.time() * 1000)}",
        "UPLOAD_DIR": str(uploads),
        "EXTRACT_WORKERS": "2",
        "EXTRACT_MEMORY_MB": "512",
        "EXTRACT_STALL_S": "3",
        "EXTRACT_OPEN_TIMEOUT_S": "4",
        "EXTRACT_TIMEOUT_CEILING_S": "20",
        "LOG_LEVEL": "INFO",
        # Many uploads from one address: the limits have their own tests (test_ratelimit.py).
        "RATELIMIT_ENABLED": "false",
    }
    with GunicornServer(env, tmp / "gunicorn.log", workers=2) as running:
        running.uploads = uploads
        yield running


class HealthProbe:
    """Poll /health from a thread and keep each answer's latency."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                ok = requests.get(f"{self.url}/health", timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            self.latencies.append(time.monotonic() - start)
            self.failures += not ok
            self._stop.wait(0.1)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(35)


def test_hostile_files_over_http_end_typed_and_health_keeps_answering(server, hostile_dir):
    pids_before = server.worker_pids()
    with HealthProbe(server.url) as probe:
        # The bomb first, on its own: beside the CPU spinners, on 2 cores, inflating toward
        # the memory cap can outlast the 3 s stall clock, and it would end `stalled` (also
        # typed and partial, but not what this case checks). Then everything else at once.
        first, *rest = HTTP_CASES
        assert first[0] == "flate_bomb"
        bodies = {first[0]: poll(server, server.submit(hostile_dir / f"{first[0]}.pdf"))}
        jobs = {name: server.submit(hostile_dir / f"{name}.pdf") for name, *_ in rest}
        bodies.update({name: poll(server, job_id) for name, job_id in jobs.items()})
    latencies = sorted(probe.latencies)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(
        f"\n/health while hostile jobs ran: {len(latencies)} calls, "
        f"median {statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms, failures {probe.failures}"
    )
    for name, status, code, partial, failed_code in HTTP_CASES:
        body = bodies[name]
        assert body["status"] == status, (name, body.get("error_code"))
        assert body.get("error_code") == code, name
        if status == "completed":
            assert body["data"].get("partial", False) is partial, name
            failed = body["data"].get("failed_pages", [])
            assert [f["code"] for f in failed] == ([failed_code] if failed_code else []), name
    assert probe.failures == 0
    assert latencies[-1] < HEALTH_UPPER_BOUND_S
    assert server.worker_pids() == pids_before
    assert list(server.uploads.iterdir()) == []


def poll(server, job_id: str, deadline_s: float = 120) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        body = requests.get(f"{server.url}/job/{job_id}", timeout=10).json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} left non-terminal")


def test_split_reading_sends_the_same_events_as_one_process(corpus):
    path = str(corpus / "clean/GeoTopo-komprimiert.pdf")
    one = collect(Path(path), ChildLimits())
    split = collect(Path(path), ChildLimits(), split_min_pages=2)
    assert one[1] is None and split[1] is None
    assert split[0] == one[0]
    assert len(pages_of(split[0])) == 117


def live_group_members(pgid: int) -> list[int]:
    """Return the pids of the processes of group ``pgid`` that are not zombies."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # the process ended meanwhile
        if int(group) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def child_with_hanging_pypdf(tmp_path: Path) -> str:
    """Write a stand-in interpreter running the real child whose pypdf open never returns."""
    script = tmp_path / "python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys, time\n"
        "sys.path.insert(0, os.getcwd())\n"
        "import pdf_engines\n"
        "pdf_engines.open_pypdf = lambda request: time.sleep(600)\n"
        "import parse_child\n"
        "sys.exit(parse_child.main(sys.argv[3:]))\n"  # argv: -m parse_child --warm ...
    )
    script.chmod(0o755)
    return str(script)


def test_forked_processes_stay_in_the_childs_group_and_end_with_its_kill(corpus, tmp_path):
    secret = "openpassword"
    path = corpus / "encrypted/libreoffice-writer-password.pdf"
    request = ExtractRequest(str(path), password=secret, split_min_pages=1)
    with ExtractionProcess(request, python=child_with_hanging_pypdf(tmp_path)) as process:
        events = process.events()
        assert next(events)["type"] == "opened"
        members = live_group_members(process.pid)
        assert process.pid in members
        assert len(members) >= 2  # the metadata process, still in pypdf
        for pid in members:  # the password reached the forks through memory only
            assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
            assert secret.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
        process.kill()
        deadline = time.monotonic() + 5
        while live_group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live_group_members(process.pid) == []
