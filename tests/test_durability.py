"""No job is lost or stranded: leases, reaper, cancel, expiry, idempotency, backpressure.

In-process tests on both job stores (memory and a real Redis); the cross-process proofs
with real gunicorn workers and a Redis that goes away are in test_durability_e2e.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

import errors
from api import create_app
from jobmanager import JobManager
from jobs import UPLOAD_NAME, FencedWriter, make_job_dir, new_job_id
from jobstore import (
    InvalidTransition,
    JobStatus,
    JobTtls,
    LeaseLost,
    MemoryJobStore,
    open_job_store,
)
from tests.servers import RedisServer, wait_until
from tests.test_api import make_settings, poll, upload
from tests.test_jobstore import FakeClock
from validation import JobOptions

SMALL = "clean/pdflatex-4-pages.pdf"
BIG = "clean/freeculture.pdf"
# Tables make pdfplumber read every page: a real option that makes a parse slow enough
# to be caught mid-way (about 10 pages/s here).
SLOW = {"include_tables": "true"}
# No idle warm child, so the parse children a test finds are those of the running job.
FAST_LIFECYCLE = {
    "lease_ttl_s": 2,
    "heartbeat_s": 0.5,
    "reaper_interval_s": 0.5,
    "extract_fork_server": False,
}


@pytest.fixture(params=["memory", "redis"])
def settings(request, tmp_path):
    """Settings with a fast lifecycle, on the memory store and on a real Redis."""
    extra = dict(FAST_LIFECYCLE)
    if request.param == "redis":
        extra["redis_url"] = request.getfixturevalue("redis_url")
        extra["redis_key_prefix"] = request.getfixturevalue("redis_prefix")
    return make_settings(tmp_path, **extra)


@pytest.fixture
def app(settings):
    application = create_app(settings)
    yield application
    application.extensions["pdfx"].jobs.shutdown(wait=False)


@pytest.fixture
def client(app):
    return app.test_client()


def parse_children() -> list[int]:
    """Return the pids of this process's parse children."""
    out = subprocess.run(
        ["pgrep", "-P", str(os.getpid()), "-f", "parse_child"], capture_output=True, text=True
    ).stdout
    return [int(pid) for pid in out.split()]


def new_children(before: set[int]) -> list[int]:
    """Return the parse children started since ``before`` (the job's; a big file has two)."""
    children = [pid for pid in parse_children() if pid not in before]
    assert children, "no parse child found for the job"
    return children


def is_gone(pid: int) -> bool:
    """Tell whether a process has exited (and been reaped)."""
    return not Path(f"/proc/{pid}").exists()


def wait_for_pages(client, job_id: str, timeout: float = 60) -> dict:
    """Poll until the job's child has streamed at least one page."""
    state: dict = {}

    def reading() -> bool:
        state.update(client.get(f"/job/{job_id}").get_json())
        return (state.get("pages_done") or 0) > 0 or state["status"] in ("completed", "failed")

    assert wait_until(reading, timeout, 0.1), state
    assert state["status"] == "processing", state
    return state


def orphan(store, settings, corpus: Path, **fields) -> dict:
    """Store a job as a worker that died would leave it: upload on disk, no live lease."""
    job_dir = make_job_dir(settings)
    shutil.copy(corpus / SMALL, job_dir / UPLOAD_NAME)
    job_id = new_job_id()
    record = {
        "job_id": job_id,
        "status": "processing",
        "stage": "reading",
        "filename": "pdflatex-4-pages.pdf",
        "options": {"filename": "pdflatex-4-pages.pdf"},
        "lease_token": "dead-worker-token",
        "attempts": 1,
        "host": socket.gethostname(),
        "job_dir": str(job_dir),
        "has_password": False,
        **fields,
    }
    store.create(record)
    store.leases.track(job_id)
    return record


class TestFencing:
    """A write fenced by a lease token lands only while that token is the job's."""

    def test_stale_owner_cannot_overwrite(self, settings):
        store, _ = open_job_store(settings)
        store.create({"job_id": "j1", "lease_token": "old"})
        store.update("j1", "old", status="processing")
        store.update("j1", "old", lease_token="new")  # a reaper takes it over
        with pytest.raises(LeaseLost):
            store.complete("j1", {"x": 1}, "old")
        assert store.complete("j1", {"x": 1}, "new")["status"] == "completed"

    def test_terminal_job_takes_only_annotations(self, settings):
        store, _ = open_job_store(settings)
        store.create({"job_id": "j2"})
        store.fail("j2", "cancelled", "gone")
        assert store.update("j2", webhook={"delivered": True})["webhook"]["delivered"]
        with pytest.raises(InvalidTransition):
            store.update("j2", message="changed")


class TestReaper:
    """An orphaned job is re-run where its upload is, or failed with worker_lost."""

    def test_orphan_is_rerun_on_this_host(self, settings, corpus):
        store, _ = open_job_store(settings)
        record = orphan(store, settings, corpus)
        manager = JobManager(settings, store, background=False)
        try:
            manager.supervisor.reap_once()
            assert manager.supervisor.reaped == [(record["job_id"], "rerun")]
            assert manager.wait(record["job_id"], 60)
            final = store.get(record["job_id"])
            assert final["status"] == "completed", final
            assert final["attempts"] == 2 and len(final["data"]["text"]) == 4
            assert not Path(record["job_dir"]).exists()
        finally:
            manager.shutdown()

    @pytest.mark.parametrize(
        "fields",
        [{"attempts": 2}, {"has_password": True}, {"job_dir": "/nonexistent/pdfx-job-x"}],
        ids=["attempts_used", "password_not_kept", "upload_gone"],
    )
    def test_orphan_that_cannot_rerun_fails_worker_lost(self, settings, corpus, fields):
        store, _ = open_job_store(settings)
        record = orphan(store, settings, corpus, **fields)
        manager = JobManager(settings, store, background=False)
        try:
            manager.supervisor.reap_once()
            final = store.get(record["job_id"])
            assert final["status"] == "failed" and final["error_code"] == "worker_lost"
            assert "submit" in final["error"]
            assert record["job_id"] not in store.leases.tracked()
        finally:
            manager.shutdown()

    def test_job_with_a_live_lease_is_left_alone(self, settings, corpus):
        store, _ = open_job_store(settings)
        record = orphan(store, settings, corpus)
        store.leases.acquire(record["job_id"], "dead-worker-token", 30)
        manager = JobManager(settings, store, background=False)
        try:
            manager.supervisor.reap_once()
            assert manager.supervisor.reaped == []
            assert store.get(record["job_id"])["status"] == "processing"
        finally:
            manager.shutdown()

    def test_only_one_reaper_at_a_time(self, settings, corpus):
        store, _ = open_job_store(settings)
        orphan(store, settings, corpus)
        first = JobManager(settings, store, background=False)
        second = JobManager(settings, store, background=False)
        try:
            first.supervisor.reap_once()
            second.supervisor.reap_once()
            assert len(first.supervisor.reaped) + len(second.supervisor.reaped) == 1
        finally:
            first.shutdown()
            second.shutdown()

    def test_taken_over_owner_stops_its_parse(self, settings, client, app, corpus):
        before = set(parse_children())
        job_id = upload(client, corpus / BIG, **SLOW).get_json()["job_id"]
        wait_for_pages(client, job_id)
        children = new_children(before)
        store = app.extensions["pdfx"].store
        store.update(job_id, lease_token="someone-else")
        store.leases.acquire(job_id, "someone-else", 30)
        assert wait_until(lambda: all(map(is_gone, children)), 10)
        record = store.get(job_id)
        assert record["status"] == "processing"  # the old owner wrote nothing after losing it


class TestCancel:
    """DELETE /job/<id> cancels a live job (its child dies) or purges a finished one."""

    def test_cancel_running_job_kills_child(self, client, corpus):
        before = set(parse_children())
        job_id = upload(client, corpus / BIG, **SLOW).get_json()["job_id"]
        wait_for_pages(client, job_id)
        children = new_children(before)
        started = time.monotonic()
        response = client.delete(f"/job/{job_id}")
        assert response.status_code == 200
        body = response.get_json()
        assert body["status"] == "failed" and body["error_code"] == "cancelled"
        assert body["purged"] is False
        assert wait_until(lambda: all(map(is_gone, children)), 2), (
            "parse child still alive 2 s after cancel"
        )
        print(f"\ncancel -> child gone in {time.monotonic() - started:.2f} s")
        time.sleep(0.5)
        assert client.get(f"/job/{job_id}").get_json()["error_code"] == "cancelled"

    def test_cancel_queued_job(self, tmp_path, corpus):
        app = create_app(make_settings(tmp_path, extract_workers=1, **FAST_LIFECYCLE))
        client = app.test_client()
        try:
            first = upload(client, corpus / BIG, **SLOW).get_json()["job_id"]
            queued = upload(client, corpus / SMALL).get_json()["job_id"]
            body = client.delete(f"/job/{queued}").get_json()
            assert body["status"] == "failed" and body["error_code"] == "cancelled"
            client.delete(f"/job/{first}")
            assert wait_until(lambda: not list(tmp_path.iterdir()), 10), "uploads left behind"
        finally:
            app.extensions["pdfx"].jobs.shutdown(wait=False)

    def test_delete_finished_job_purges_it(self, client, corpus):
        job_id = upload(client, corpus / SMALL).get_json()["job_id"]
        assert poll(client, job_id)["status"] == "completed"
        body = client.delete(f"/job/{job_id}").get_json()
        assert body["status"] == "completed" and body["purged"] is True
        assert client.get(f"/job/{job_id}").status_code == 404

    def test_delete_unknown_job_is_404(self, client):
        assert client.delete("/job/nope").status_code == 404


class TestExpiry:
    """An expired job answers 410 job_expired; an id that never existed answers 404."""

    def test_memory_store_tombstones(self):
        clock = FakeClock()
        store = MemoryJobStore(JobTtls(active=100, completed=100, failed=100, tombstone=500), clock)
        store.create({"job_id": "gone"})
        clock.advance(101)
        assert store.get("gone") is None and store.was_expired("gone")
        assert not store.was_expired("never")
        clock.advance(500)
        assert not store.was_expired("gone")

    def test_redis_expiry_is_410(self, tmp_path, corpus, redis_url, redis_prefix):
        settings = make_settings(tmp_path, redis_url=redis_url, redis_key_prefix=redis_prefix)
        app = create_app(settings)
        client = app.test_client()
        try:
            job_id = upload(client, corpus / SMALL).get_json()["job_id"]
            assert "expires_at" in poll(client, job_id)
            raw = redis.Redis.from_url(redis_url)
            raw.pexpire(f"{redis_prefix}:job:{job_id}", 1)  # let its TTL run out now
            time.sleep(0.05)
            response = client.get(f"/job/{job_id}")
            assert response.status_code == 410
            assert response.get_json()["error_code"] == "job_expired"
            assert client.get(f"/job/{'0' * 32}").status_code == 404
            raw.close()
        finally:
            app.extensions["pdfx"].jobs.shutdown()


class TestIdempotency:
    """The same Idempotency-Key returns the same job; with another file it is a 409."""

    def test_same_key_same_job(self, client, corpus):
        headers = {"Idempotency-Key": "order-42"}
        first = upload_with(client, corpus / SMALL, headers).get_json()
        second = upload_with(client, corpus / SMALL, headers).get_json()
        assert first["job_id"] == second["job_id"]
        third = upload_with(client, corpus / SMALL, {"Idempotency-Key": "order-43"}).get_json()
        assert third["job_id"] != first["job_id"]

    def test_same_key_other_file_conflicts(self, client, corpus):
        headers = {"Idempotency-Key": "order-44"}
        assert upload_with(client, corpus / SMALL, headers).status_code == 202
        response = upload_with(client, corpus / "clean/2201.00200.pdf", headers)
        assert response.status_code == 409
        assert response.get_json()["error_code"] == "idempotency_conflict"

    def test_same_key_other_options_conflicts(self, client, corpus):
        headers = {"Idempotency-Key": "order-45"}
        assert upload_with(client, corpus / SMALL, headers).status_code == 202
        assert upload_with(client, corpus / SMALL, headers, pages="1").status_code == 409

    def test_dedupe_reuses_a_completed_result(self, tmp_path, corpus):
        app = create_app(make_settings(tmp_path, dedupe=True))
        client = app.test_client()
        try:
            first = upload(client, corpus / SMALL).get_json()["job_id"]
            done = poll(client, first)
            second = upload(client, corpus / SMALL).get_json()
            assert second["job_id"] != first and second["status"] == "completed"
            assert client.get(f"/job/{second['job_id']}").get_json()["data"] == done["data"]
            other = upload(client, corpus / SMALL, pages="1").get_json()
            assert other["status"] == "queued"  # other options: a real run
        finally:
            app.extensions["pdfx"].jobs.shutdown()

    def test_dedupe_index_exists_the_moment_the_job_reads_completed(self, tmp_path, corpus):
        # The long-poll answers at the instant of the completion write: an identical upload
        # sent right then must already find the result (it is indexed before that write).
        app = create_app(make_settings(tmp_path, dedupe=True))
        client = app.test_client()
        try:
            for size in range(1000, 1005):  # a new result each time: none to reuse before
                first = upload(client, corpus / SMALL, chunk_size=size).get_json()["job_id"]
                assert client.get(f"/job/{first}?wait=30").get_json()["status"] == "completed"
                again = upload(client, corpus / SMALL, chunk_size=size).get_json()
                assert again["status"] == "completed" and again["job_id"] != first
        finally:
            app.extensions["pdfx"].jobs.shutdown()


def upload_with(client, path: Path, headers: dict, **fields):
    """POST a file with extra headers."""
    values: dict = {key: str(value) for key, value in fields.items()}
    values["file"] = FileStorage(path.open("rb"), path.name)
    boundary, body = encode_multipart(values)
    values["file"].close()
    return client.post(
        "/extract/async",
        data=body,
        headers=headers,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


class TestBackpressure:
    """A full worker answers 429 busy with Retry-After before storing the upload."""

    def test_full_queue_is_429(self, tmp_path, corpus):
        app = create_app(make_settings(tmp_path, extract_workers=1, queue_max=0))
        client = app.test_client()
        try:
            first = upload(client, corpus / BIG, **SLOW).get_json()["job_id"]
            response = upload(client, corpus / SMALL)
            assert response.status_code == 429
            assert response.get_json()["error_code"] == "busy"
            assert int(response.headers["Retry-After"]) > 0
            assert len(list(tmp_path.iterdir())) == 1  # only the first job's upload
            client.delete(f"/job/{first}")
        finally:
            app.extensions["pdfx"].jobs.shutdown(wait=False)

    def test_draining_worker_is_503(self, tmp_path, corpus):
        app = create_app(make_settings(tmp_path))
        client = app.test_client()
        app.extensions["pdfx"].jobs.drain(0)
        response = upload(client, corpus / SMALL)
        assert response.status_code == 503 and response.get_json()["error_code"] == "busy"
        assert "Retry-After" in response.headers


class TestDrain:
    """Shutdown hands an unfinished job back; a reaper on the same host re-runs it."""

    def test_handed_back_job_is_rerun(self, settings, corpus):
        store, _ = open_job_store(settings)
        leaving = JobManager(settings, store, background=False)
        with (corpus / BIG).open("rb") as handle:
            options = JobOptions(filename="freeculture.pdf", include_tables=True, pages=((1, 30),))
            job = leaving.submit(handle, options)
        wait_until(lambda: (store.get(job["job_id"])["pages_done"] or 0) > 0, 60)
        leaving.drain(0.2)
        record = store.get(job["job_id"])
        assert record["status"] == "processing"
        assert Path(record["job_dir"], UPLOAD_NAME).exists()
        staying = JobManager(settings, store, background=False)
        try:
            staying.supervisor.reap_once()
            assert staying.supervisor.reaped == [(job["job_id"], "rerun")]
            assert staying.wait(job["job_id"], 120)
            final = store.get(job["job_id"])
            assert final["status"] == JobStatus.COMPLETED.value, final
            assert len(final["data"]["text"]) == 30
        finally:
            staying.shutdown()


class TestCancelFromAnotherWorker:
    """A cancel recorded by one worker is seen by the owner's loop, which kills the child."""

    def test_owner_kills_child_after_remote_cancel(self, settings, corpus):
        store, _ = open_job_store(settings)
        owner = JobManager(settings, store)
        other = JobManager(settings, store, background=False)
        before = set(parse_children())
        try:
            with (corpus / BIG).open("rb") as handle:
                options = JobOptions(filename="freeculture.pdf", include_tables=True)
                job_id = owner.submit(handle, options)["job_id"]
            assert wait_until(lambda: (store.get(job_id)["pages_done"] or 0) > 0, 60)
            children = new_children(before)
            started = time.monotonic()
            record, purged = other.cancel(job_id)
            assert record["error_code"] == "cancelled" and not purged
            assert wait_until(lambda: all(map(is_gone, children)), 2), (
                "owner did not kill its child in 2 s"
            )
            print(f"\nremote cancel -> child gone in {time.monotonic() - started:.2f} s")
            assert owner.wait(job_id, 10)
            assert not Path(store.get(job_id)["job_dir"]).exists()
        finally:
            owner.shutdown(wait=False)
            other.shutdown()


class TestFinalWriteDuringOutage:
    """A job that ends while Redis is down is recorded when Redis returns."""

    def test_result_lands_after_restart(self, tmp_path):
        server = RedisServer(tmp_path).start()
        settings = make_settings(tmp_path, redis_url=server.url, store_retry_s=30)
        store, state = open_job_store(settings)
        assert state == "connected"
        try:
            store.create({"job_id": "during", "lease_token": "t"})  # queued
            redis.Redis(port=server.port).shutdown(save=True)
            server.process.wait(10)
            writer = FencedWriter(store, "during", "t", settings.store_retry_s)
            writer.progress(status="processing", pages_done=1)  # kept for later, not raised
            outcome: dict = {}
            thread = threading.Thread(target=lambda: outcome.update(writer.complete({"x": 1})))
            thread.start()
            time.sleep(2)
            assert thread.is_alive() and not outcome  # still waiting for Redis
            server.start()
            thread.join(30)
            assert outcome["status"] == "completed"
            final = store.get("during")
            assert final["data"] == {"x": 1} and final["pages_done"] == 1
        finally:
            store.close()
            server.stop()

    def test_gives_up_after_store_retry_s(self, tmp_path):
        server = RedisServer(tmp_path).start()
        settings = make_settings(tmp_path, redis_url=server.url, store_retry_s=1)
        store, _ = open_job_store(settings)
        try:
            store.create({"job_id": "lost", "lease_token": "t", "status": "processing"})
            server.stop()
            with pytest.raises(errors.JobStoreUnavailable):
                FencedWriter(store, "lost", "t", settings.store_retry_s).complete({"x": 1})
        finally:
            store.close()


class TestOwnership:
    """Cancel, idempotency keys and 410 are per caller: another caller sees nothing."""

    def test_other_caller_cannot_cancel_or_reuse_a_key(self, tmp_path, corpus):
        app = create_app(make_settings(tmp_path, api_keys="key-a,key-b"))
        client = app.test_client()
        a, b = {"X-API-Key": "key-a"}, {"X-API-Key": "key-b"}
        try:
            mine = upload(client, corpus / SMALL, headers={**a, "Idempotency-Key": "k"})
            theirs = upload(client, corpus / SMALL, headers={**b, "Idempotency-Key": "k"})
            assert mine.get_json()["job_id"] != theirs.get_json()["job_id"]
            job_id = mine.get_json()["job_id"]
            assert client.delete(f"/job/{job_id}", headers=b).status_code == 404
            assert client.delete(f"/job/{job_id}", headers=a).status_code == 200
        finally:
            app.extensions["pdfx"].jobs.shutdown()

    def test_tombstone_answers_only_its_owner(self):
        clock = FakeClock()
        store = MemoryJobStore(JobTtls(active=100, completed=100, failed=100, tombstone=500), clock)
        store.create({"job_id": "theirs", "owner": "key:a"})
        clock.advance(101)
        assert store.was_expired("theirs", "key:a")
        assert not store.was_expired("theirs", "key:b") and not store.was_expired("theirs")


class TestDroppedFromQueue:
    """A queued job dropped by a pool shutdown is not stranded: the reaper ends it."""

    def test_dropped_job_fails_worker_lost(self, settings, corpus):
        store, _ = open_job_store(settings)
        one = settings.model_copy(update={"extract_workers": 1})
        leaving = JobManager(one, store, background=False)
        with (corpus / BIG).open("rb") as big, (corpus / SMALL).open("rb") as small:
            running = leaving.submit(big, JobOptions(filename="x.pdf", include_tables=True))
            queued = leaving.submit(small, JobOptions(filename="pdflatex-4-pages.pdf"))["job_id"]
        leaving.shutdown(wait=False)
        leaving.stop_job(running["job_id"], "cancelled")  # end the running parse too
        assert queued in store.leases.tracked()
        assert not Path(store.get(queued)["job_dir"]).exists()  # its upload is removed
        staying = JobManager(settings, store, background=False)
        try:
            assert wait_until(lambda: store.leases.holders([queued]) == [None], 10)
            staying.supervisor.reap_once()
            final = store.get(queued)
            assert final["status"] == "failed" and final["error_code"] == "worker_lost"
        finally:
            staying.shutdown()
