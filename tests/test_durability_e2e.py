"""Durability with real processes: gunicorn (2 workers) on a real Redis; workers and Redis die.

Each test prints what it measured (worker kill -> job terminal, Redis restart -> first 200).
The 352-page document is parsed with include_tables=true: a real option that makes
pdfplumber read every page (about 10 pages/s here), so the parse can be caught mid-way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import requests

from tests import hostile_pdfs
from tests.servers import GunicornServer, RedisServer, wait_until

pytestmark = pytest.mark.e2e

SMALL = "clean/pdflatex-4-pages.pdf"
BIG = "clean/freeculture.pdf"
LIFECYCLE_ENV = {
    "LEASE_TTL_S": "4",
    "HEARTBEAT_S": "1",
    "REAPER_INTERVAL_S": "2",
    "GUNICORN_GRACEFUL_TIMEOUT": "4",
    "EXTRACT_WORKERS": "2",
    "LOG_LEVEL": "INFO",
    # Many uploads from one address: the limits have their own tests (test_ratelimit.py).
    "RATELIMIT_ENABLED": "false",
    # No idle warm child, so the parse children a test finds are those of the running job.
    "EXTRACT_FORK_SERVER": "false",
}
RECOVERY_BOUND_S = 60


def start_server(
    tmp: Path, redis_url: str, prefix: str, workers: int = 2, **env: str
) -> GunicornServer:
    """Start gunicorn (2 workers unless told), a fast lifecycle and a private upload dir."""
    uploads = tmp / "uploads"
    uploads.mkdir(exist_ok=True)
    values = {
        **LIFECYCLE_ENV,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "UPLOAD_DIR": str(uploads),
        **env,
    }
    server = GunicornServer(values, tmp / "gunicorn.log", workers=workers).start()
    server.uploads = uploads
    return server


@pytest.fixture
def make_server(tmp_path, redis_url, redis_prefix):
    """Build gunicorn servers on the shared Redis under a private prefix; stop them after."""
    servers: list[GunicornServer] = []

    def make(workers: int = 2, **env: str) -> GunicornServer:
        servers.append(start_server(tmp_path, redis_url, redis_prefix, workers, **env))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def get_job(server, job_id: str) -> dict:
    return requests.get(f"{server.url}/job/{job_id}", timeout=10).json()


def wait_for_pages(server, job_id: str, pages: int = 5, timeout: float = 90) -> dict:
    """Poll until the job has read some pages (its child is mid-parse)."""
    state: dict = {}

    def reading() -> bool:
        state.update(get_job(server, job_id))
        return (state.get("pages_done") or 0) >= pages or state["status"] in ("completed", "failed")

    assert wait_until(reading, timeout, 0.1), state
    assert state["status"] == "processing", state
    return state


def parse_child_of(server) -> tuple[int, list[int]]:
    """Return (worker pid, its parse children's pids) of the worker running a parse.

    A large document is read by two children at once, so a parse may have two.
    """
    for worker in server.worker_pids():
        out = subprocess.run(
            ["pgrep", "-P", str(worker), "-f", "parse_child"], capture_output=True, text=True
        ).stdout.split()
        if out:
            return worker, [int(pid) for pid in out]
    raise AssertionError("no worker is running a parse")


def forked_parse_of(server) -> tuple[int, int, list[int]]:
    """Return (worker pid, its zygote's pid, the zygote's children) of the worker parsing."""
    for worker in server.worker_pids():
        for zygote in pgrep_children(worker, "parse_child"):
            children = pgrep_children(zygote)
            if children:
                return worker, zygote, children
    raise AssertionError("no zygote has a parse child")


def pgrep_children(pid: int, pattern: str | None = None) -> list[int]:
    """Return the pids of a process's children (whose command line matches ``pattern``)."""
    argv = ["pgrep", "-P", str(pid), *(["-f", pattern] if pattern else [])]
    return [int(p) for p in subprocess.run(argv, capture_output=True, text=True).stdout.split()]


def follow(server, job_id: str, deadline_s: float) -> tuple[dict, float | None]:
    """Poll to a terminal state; return it and when a re-run was first seen (monotonic).

    A re-run shows as its restart message, or as pages_done going back (it starts over).
    """
    rerun_seen = None
    most = 0
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        body = get_job(server, job_id)
        done = body.get("pages_done") or 0
        restarted = "Restarted" in (body.get("message") or "") or done < most
        if rerun_seen is None and restarted:
            rerun_seen = time.monotonic()
        most = max(most, done)
        if body["status"] in ("completed", "failed"):
            return body, rerun_seen
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still not terminal after {deadline_s} s: {body}")


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


class TestWorkerDeath:
    """A job whose worker dies is re-run on this host or failed worker_lost, never stuck."""

    def test_kill_9_mid_parse_reruns_to_completion(self, make_server, corpus):
        server = make_server()
        job_id = server.submit(corpus / BIG, include_tables="true")
        wait_for_pages(server, job_id)
        worker, _ = parse_child_of(server)
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        body, rerun = follow(server, job_id, 300)
        done = time.monotonic()
        assert rerun is not None, body
        print(
            f"\nkill -9 worker mid-parse (352 pages + tables): re-run started "
            f"{rerun - killed:.1f} s after the kill, completed {done - killed:.1f} s after it"
        )
        assert rerun - killed < RECOVERY_BOUND_S
        assert f"job {job_id}: re-running on this worker (attempt 2)" in server.log()
        assert body["status"] == "completed", body
        assert body["pages_done"] == 352 and len(body["data"]["text"]) == 352

    def test_kill_9_with_no_attempts_left_fails_worker_lost(self, make_server, corpus):
        server = make_server(MAX_ATTEMPTS="1")
        job_id = server.submit(corpus / BIG, include_tables="true")
        wait_for_pages(server, job_id)
        worker, children = parse_child_of(server)
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        body, _ = follow(server, job_id, 120)
        elapsed = time.monotonic() - killed
        print(f"\nkill -9 worker, MAX_ATTEMPTS=1: worker_lost {elapsed:.1f} s after the kill")
        assert body["status"] == "failed" and body["error_code"] == "worker_lost", body
        assert elapsed < RECOVERY_BOUND_S
        assert wait_until(lambda: not list(server.uploads.iterdir()), 10), "upload left behind"
        assert wait_until(lambda: all(map(gone, children)), 30), "the dead worker's child lingers"

    def test_kill_9_of_a_worker_ends_its_zygote_and_the_parse_children(self, make_server, tmp_path):
        # A page that spins forever: its child never writes again, so only the zygote's kill
        # (not a broken pipe) can end it once its worker is gone.
        spinner = tmp_path / "spinning.pdf"
        spinner.write_bytes(hostile_pdfs.spinning_page())
        server = make_server(EXTRACT_FORK_SERVER="true", MAX_ATTEMPTS="1", EXTRACT_STALL_S="300")
        job_id = server.submit(spinner)
        wait_for_pages(server, job_id, pages=1)
        worker, zygote, children = forked_parse_of(server)
        os.kill(worker, signal.SIGKILL)
        body, _ = follow(server, job_id, 120)
        assert body["status"] == "failed" and body["error_code"] == "worker_lost", body
        # The zygote reads end-of-file on its socket, kills the children it has and exits.
        assert wait_until(lambda: all(map(gone, [zygote, *children])), 30), "a parse lingers"

    def test_sigterm_hands_the_job_back(self, make_server, corpus):
        server = make_server()
        job_id = server.submit(corpus / BIG, include_tables="true", pages="1-150")
        wait_for_pages(server, job_id)
        worker, _ = parse_child_of(server)
        os.kill(worker, signal.SIGTERM)
        stopped = time.monotonic()
        body, rerun = follow(server, job_id, 300)
        done = time.monotonic()
        assert rerun is not None, body
        print(
            f"\nSIGTERM worker (graceful 4 s) mid-parse (150 pages + tables): re-run started "
            f"{rerun - stopped:.1f} s after, completed {done - stopped:.1f} s after"
        )
        assert rerun - stopped < RECOVERY_BOUND_S
        assert body["status"] == "completed" and len(body["data"]["text"]) == 150, body
        assert "handed back" in server.log()

    def test_sigterm_answers_a_waiting_long_poll_at_once(self, make_server, corpus):
        server = make_server(workers=1)  # the long-poll can only wait on the worker stopped
        job_id = server.submit(corpus / BIG, include_tables="true", pages="1-150")
        wait_for_pages(server, job_id)
        worker, _ = parse_child_of(server)
        answer: dict = {}

        def long_poll() -> None:
            try:
                response = requests.get(
                    f"{server.url}/job/{job_id}", params={"wait": 30}, timeout=60
                )
                answer.update(code=response.status_code, body=response.json())
            except requests.RequestException as exc:
                answer["error"] = repr(exc)
            answer["at"] = time.monotonic()

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(1.0)  # the long-poll is waiting for the job to end
        os.kill(worker, signal.SIGTERM)
        stopped = time.monotonic()
        poller.join(60)
        # Held to the graceful timeout (4 s here, 30 s by default), it would leave the drain
        # no time before the kill; answered at once, the drain hands the job back.
        assert answer.get("code") == 200, answer
        assert answer["body"]["status"] in ("queued", "processing"), answer
        assert answer["at"] - stopped < 2.0
        body, _ = follow(server, job_id, 300)
        assert body["status"] == "completed" and len(body["data"]["text"]) == 150, body
        assert "handed back" in server.log()


class TestWorkerStart:
    """A worker starts its parse zygote once it is ready, so no job waits for its imports."""

    def test_each_worker_has_a_zygote_before_its_first_job(self, make_server, corpus):
        server = make_server(EXTRACT_FORK_SERVER="true")
        workers = server.worker_pids()
        assert len(workers) == 2
        assert wait_until(lambda: all(pgrep_children(w, "parse_child") for w in workers), 30)
        zygotes = {w: pgrep_children(w, "parse_child") for w in workers}
        job_id = server.submit(corpus / "clean/2022_Q3_INTC.pdf")
        body, _ = follow(server, job_id, 60)
        assert body["status"] == "completed", body
        # The job's child was forked by a zygote already running: none was started for it.
        assert {w: pgrep_children(w, "parse_child") for w in workers} == zygotes


class TestCancelAcrossWorkers:
    """DELETE on any worker stops the parse on the worker that runs it within 2 s."""

    def test_cancel_kills_child_within_2s(self, make_server, corpus):
        server = make_server()
        job_id = server.submit(corpus / BIG, include_tables="true")
        wait_for_pages(server, job_id)
        _, children = parse_child_of(server)
        started = time.monotonic()
        response = requests.delete(f"{server.url}/job/{job_id}", timeout=10)
        assert response.status_code == 200
        assert response.json()["error_code"] == "cancelled"
        assert wait_until(lambda: all(map(gone, children)), 2), "child alive 2 s after DELETE"
        print(f"\nDELETE -> parse child gone in {time.monotonic() - started:.2f} s")
        assert get_job(server, job_id)["error_code"] == "cancelled"
        assert wait_until(lambda: not list(server.uploads.iterdir()), 10)


class TestRedisOutage:
    """Redis stops during a burst of uploads and polls: 503s, no 500s, every job ends."""

    def test_restart_during_burst(self, tmp_path, corpus):
        store = RedisServer(tmp_path).start()
        # A queue deep enough that uploads during the outage reach the (missing) store.
        server = start_server(tmp_path, store.url, "outage", STORE_RETRY_S="60", QUEUE_MAX="40")
        codes: Counter = Counter()
        accepted: list[str] = []
        health: Counter = Counter()
        stop = threading.Event()
        phase = ["before"]

        def burst() -> None:
            while not stop.is_set():
                try:
                    with (corpus / SMALL).open("rb") as handle:
                        posted = requests.post(
                            f"{server.url}/extract/async",
                            files={"file": ("a.pdf", handle, "application/pdf")},
                            timeout=30,
                        )
                    codes[f"{phase[0]} POST {posted.status_code}"] += 1
                    if posted.status_code == 202:
                        accepted.append(posted.json()["job_id"])
                    if accepted:
                        polled = requests.get(f"{server.url}/job/{accepted[-1]}", timeout=30)
                        codes[f"{phase[0]} GET {polled.status_code}"] += 1
                    health[requests.get(f"{server.url}/health", timeout=30).json()["status"]] += 1
                except requests.RequestException as exc:
                    codes[type(exc).__name__] += 1
                time.sleep(0.2)

        threads = [threading.Thread(target=burst) for _ in range(3)]
        try:
            for thread in threads:
                thread.start()
            time.sleep(3)
            phase[0] = "outage"
            redis.Redis(port=store.port).shutdown(save=True)  # keep the data, as a restart does
            store.process.wait(10)
            time.sleep(5)
            restarted = time.monotonic()
            store.start()
            phase[0] = "after"
            first_ok = wait_for_first_200(server, accepted)
            time.sleep(2)
            stop.set()
            for thread in threads:
                thread.join(60)
            print(
                f"\nRedis restart (process start) -> first 200 on GET /job in "
                f"{first_ok - restarted:.2f} s; "
                f"responses {dict(sorted(codes.items()))}; health {dict(health)}"
            )
            assert not any(key.endswith(" 500") for key in codes), codes
            assert codes["outage GET 503"] + codes["outage POST 503"] > 0, "outage not observed"
            assert health["degraded"] > 0
            finals = [follow(server, job_id, 120)[0] for job_id in accepted]
            statuses = Counter(body["status"] for body in finals)
            print(f"accepted {len(accepted)} jobs, after recovery: {dict(statuses)}")
            assert statuses["completed"] == len(accepted), statuses
        finally:
            stop.set()
            server.stop()
            store.stop()


def wait_for_first_200(server, accepted: list[str], timeout: float = 30) -> float:
    """Return when GET /job first answered 200 after Redis came back."""

    def ok() -> bool:
        try:
            return requests.get(f"{server.url}/job/{accepted[0]}", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    assert wait_until(ok, timeout, 0.02), "GET /job never answered 200 after the restart"
    return time.monotonic()
