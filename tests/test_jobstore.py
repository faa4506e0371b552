"""Contract tests for the job store: the same behaviour in memory and on a real Redis."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import pytest
import redis

import config
import errors
from jobstore import (
    STOP_CHECK_S,
    InvalidTransition,
    JobExists,
    JobStatus,
    JobTtls,
    MemoryJobStore,
    RedisJobStore,
    check_transition,
    connect_redis,
    job_key,
    open_job_store,
    redact_url,
    utc_iso,
)

TTLS = JobTtls(active=1000, completed=300, failed=600)
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"
DATA = {"pages": [{"page": 1, "text": "héllo wörld"}], "chunks": [{"id": 0, "text": "x" * 5000}]}


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_id() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def redis_client(redis_url):
    client = connect_redis(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_store(redis_client, redis_prefix):
    return RedisJobStore(redis_client, TTLS, redis_prefix)


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return MemoryJobStore(TTLS)
    return request.getfixturevalue("redis_store")


def processing_job(store) -> str:
    job_id = new_id()
    store.create({"job_id": job_id})
    store.update(job_id, status="processing", stage="reading")
    return job_id


# --- the model ------------------------------------------------------------------------------


def test_keys_and_timestamps_have_one_shape():
    assert job_key("pdfx", "abc") == "pdfx:job:abc"
    assert job_key("pdfx", "abc", "result") == "pdfx:job:abc:result"
    assert utc_iso(0) == "1970-01-01T00:00:00.000Z"


def test_ttls_come_from_settings():
    settings = config.Settings(
        redis_url=None, redis_job_ttl=700, redis_completed_ttl=120, redis_failed_ttl=900
    )
    ttls = JobTtls.from_settings(settings)
    assert [ttls.ttl_for(s) for s in JobStatus] == [700, 700, 120, 900]


LEGAL = {
    ("queued", "queued"),
    ("queued", "processing"),
    ("queued", "failed"),
    ("processing", "processing"),
    ("processing", "completed"),
    ("processing", "failed"),
}


@pytest.mark.parametrize("current", [s.value for s in JobStatus])
@pytest.mark.parametrize("new", [s.value for s in JobStatus])
def test_transition_table(current, new):
    if (current, new) in LEGAL:
        check_transition(current, new)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(current, new)


# --- contract, on both stores -----------------------------------------------------------------


def test_create_then_get_round_trip(store):
    job_id = new_id()
    created = store.create({"job_id": job_id, "filename": "a.pdf", "pages_total": 3})
    assert created["status"] == "queued"
    assert created["stage"] == "file_received"
    assert created["created_at"] == created["updated_at"]
    assert created["created_at"].endswith("Z") and created["expires_at"] > created["created_at"]
    assert store.get(job_id) == created
    assert json.loads(json.dumps(created)) == created


def test_unknown_or_malformed_id_is_none(store):
    assert store.get(new_id()) is None
    assert store.get("abc:result") is None
    assert store.get("") is None
    assert store.delete(new_id()) is False


def test_create_twice_or_without_valid_id_is_refused(store):
    job_id = new_id()
    store.create({"job_id": job_id})
    with pytest.raises(JobExists):
        store.create({"job_id": job_id})
    with pytest.raises(ValueError):
        store.create({"filename": "no id.pdf"})
    with pytest.raises(ValueError):
        store.create({"job_id": "a:b"})


def test_update_merges_and_bumps_updated_at(store):
    job_id = new_id()
    created = store.create({"job_id": job_id, "filename": "a.pdf"})
    time.sleep(0.01)
    store.update(job_id, status=JobStatus.PROCESSING, stage="reading", pages_total=5)
    updated = store.update(job_id, progress=40, pages_done=2, message="page 2 of 5")
    got = store.get(job_id)
    assert got == updated
    assert got["filename"] == "a.pdf" and got["pages_total"] == 5 and got["pages_done"] == 2
    assert got["status"] == "processing" and got["stage"] == "reading" and got["progress"] == 40
    assert got["created_at"] == created["created_at"]
    assert got["updated_at"] > created["updated_at"]
    assert got["expires_at"] > created["expires_at"]


def test_unknown_values_are_refused(store):
    job_id = new_id()
    store.create({"job_id": job_id})
    with pytest.raises(ValueError):
        store.update(job_id, status="running")
    with pytest.raises(ValueError):
        store.update(job_id, stage="thinking")
    assert store.get(job_id)["status"] == "queued"


def test_writes_to_unknown_job_raise_not_found(store):
    job_id = new_id()
    with pytest.raises(errors.JobNotFound):
        store.update(job_id, progress=1)
    with pytest.raises(errors.JobNotFound):
        store.complete(job_id, DATA)
    with pytest.raises(errors.JobNotFound):
        store.fail(job_id, "corrupt_pdf", "broken")
    assert store.get(job_id) is None


def test_complete_stores_data_and_get_returns_it(store):
    job_id = processing_job(store)
    done = store.complete(job_id, DATA, pages_done=1, message="finished")
    got = store.get(job_id)
    assert got == done
    assert got["status"] == "completed" and got["stage"] == "done" and got["progress"] == 100
    assert got["data"] == DATA and got["message"] == "finished"


def test_fail_records_code_and_message(store):
    job_id = new_id()
    store.create({"job_id": job_id})
    failed = store.fail(job_id, "corrupt_pdf", "The file is damaged.", pages_done=0)
    got = store.get(job_id)
    assert got == failed
    assert got["status"] == "failed" and got["stage"] == "failed"
    assert got["error_code"] == "corrupt_pdf" and got["error"] == "The file is damaged."
    assert "data" not in got


def test_queued_job_cannot_complete_directly(store):
    job_id = new_id()
    store.create({"job_id": job_id})
    with pytest.raises(InvalidTransition):
        store.complete(job_id, DATA)
    with pytest.raises(InvalidTransition):
        store.update(job_id, status="completed")
    got = store.get(job_id)
    assert got["status"] == "queued" and "data" not in got


def test_processing_job_cannot_go_back_to_queued(store):
    job_id = processing_job(store)
    with pytest.raises(InvalidTransition):
        store.update(job_id, status="queued")
    assert store.get(job_id)["status"] == "processing"


@pytest.mark.parametrize(
    "write",
    [
        lambda s, j: s.update(j, status="processing"),
        lambda s, j: s.update(j, progress=50),
        lambda s, j: s.update(j, message="late progress"),
        lambda s, j: s.complete(j, {"other": True}),
        lambda s, j: s.fail(j, "timeout", "too slow"),
    ],
    ids=["to-processing", "progress", "message", "complete", "fail"],
)
@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_terminal_jobs_refuse_every_write(store, outcome, write):
    job_id = processing_job(store)
    if outcome == "completed":
        store.complete(job_id, DATA)
    else:
        store.fail(job_id, "no_text_layer", "scanned")
    before = store.get(job_id)
    with pytest.raises(InvalidTransition):
        write(store, job_id)
    assert store.get(job_id) == before


def test_get_encoded_gives_the_result_as_stored_json(store):
    job_id = processing_job(store)
    store.complete(job_id, DATA, pages_done=1)
    record, data_json = store.get_encoded(job_id)
    assert isinstance(data_json, bytes) and json.loads(data_json.decode("utf-8")) == DATA
    assert "data" not in record and record["status"] == "completed"
    assert {**record, "data": json.loads(data_json)} == store.get(job_id)


@pytest.mark.parametrize("outcome", ["queued", "processing", "failed"])
def test_get_encoded_without_result_is_the_record(store, outcome):
    job_id = new_id()
    store.create({"job_id": job_id, "filename": "a.pdf"})
    if outcome == "processing":
        store.update(job_id, status="processing", pages_done=2)
    elif outcome == "failed":
        store.fail(job_id, "corrupt_pdf", "broken")
    record, data_json = store.get_encoded(job_id)
    assert data_json is None and record == store.get(job_id)


def test_get_encoded_of_unknown_or_malformed_id_is_none(store):
    assert store.get_encoded(new_id()) is None
    assert store.get_encoded("abc:result") is None
    assert store.get_encoded("") is None


def test_get_encoded_record_is_the_callers_own_copy(store):
    job_id = processing_job(store)
    store.complete(job_id, DATA)
    store.get_encoded(job_id).record["status"] = "tampered"
    assert store.get_encoded(job_id).record["status"] == "completed"
    assert store.get(job_id)["status"] == "completed"


def test_delete_removes_record_and_result(store):
    job_id = processing_job(store)
    store.complete(job_id, DATA)
    assert store.delete(job_id) is True
    assert store.get(job_id) is None
    assert store.get_encoded(job_id) is None
    assert store.delete(job_id) is False


def run_together(actions) -> list:
    """Start every action at the same instant; return each one's result or exception."""
    barrier = threading.Barrier(len(actions))
    outcomes: list = [None] * len(actions)

    def run(index, action):
        barrier.wait()
        try:
            outcomes[index] = action()
        except Exception as exc:  # the outcome under test
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_racing_finishers_exactly_one_wins(store):
    for _ in range(15):
        job_id = processing_job(store)
        finishers = [lambda j=job_id: store.complete(j, DATA)] * 3
        finishers += [lambda j=job_id: store.fail(j, "timeout", "too slow")] * 3
        outcomes = run_together(finishers)
        winners = [o for o in outcomes if isinstance(o, dict)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, InvalidTransition) for o in outcomes if o is not winners[0])
        final = store.get(job_id)
        assert final["status"] == winners[0]["status"]
        assert ("data" in final) == (final["status"] == "completed")


def test_progress_writers_never_undo_completion(store):
    job_id = processing_job(store)

    def report_progress():
        refused = 0
        for page in range(40):
            try:
                store.update(job_id, status="processing", pages_done=page)
            except InvalidTransition:
                refused += 1
        return refused

    def finish():
        time.sleep(0.005)
        return store.complete(job_id, DATA)

    outcomes = run_together([report_progress, report_progress, report_progress, finish])
    assert isinstance(outcomes[-1], dict), outcomes
    final = store.get(job_id)
    assert final["status"] == "completed" and final["progress"] == 100 and final["data"] == DATA


# --- TTLs ---------------------------------------------------------------------------------------


def assert_ttl(client, key, expected):
    assert abs(client.ttl(key) - expected) <= 1, (key, client.ttl(key), expected)


def test_redis_ttl_follows_status_after_every_write(redis_store, redis_client, redis_prefix):
    job_id = new_id()
    key, result_key = job_key(redis_prefix, job_id), job_key(redis_prefix, job_id, "result")
    redis_store.create({"job_id": job_id})
    assert_ttl(redis_client, key, TTLS.active)
    redis_client.expire(key, 10)  # shortened, so the next write must visibly restore it
    redis_store.update(job_id, status="processing", progress=10)
    assert_ttl(redis_client, key, TTLS.active)
    assert redis_client.exists(result_key) == 0
    redis_store.complete(job_id, DATA)
    assert_ttl(redis_client, key, TTLS.completed)
    assert_ttl(redis_client, result_key, TTLS.completed)

    other = new_id()
    redis_store.create({"job_id": other})
    redis_store.fail(other, "corrupt_pdf", "broken")
    assert_ttl(redis_client, job_key(redis_prefix, other), TTLS.failed)


def test_redis_keeps_result_out_of_the_record(redis_store, redis_client, redis_prefix):
    job_id = processing_job(redis_store)
    redis_store.complete(job_id, DATA)
    record = json.loads(redis_client.get(job_key(redis_prefix, job_id)))
    assert "data" not in record and record["status"] == "completed"
    assert json.loads(redis_client.get(job_key(redis_prefix, job_id, "result"))) == DATA


def test_expires_at_matches_the_ttl(store):
    job_id = processing_job(store)
    done = store.complete(job_id, DATA)
    assert done["expires_at"] == utc_iso(iso_seconds(done["updated_at"]) + TTLS.completed)


def iso_seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_redis_job_vanishes_when_its_ttl_runs_out(redis_client, redis_prefix):
    tiny = RedisJobStore(redis_client, JobTtls(active=1000, completed=1, failed=1), redis_prefix)
    job_id = processing_job(tiny)
    tiny.complete(job_id, DATA)
    assert tiny.get(job_id)["data"] == DATA
    time.sleep(1.5)
    assert tiny.get(job_id) is None
    assert tiny.get_encoded(job_id) is None
    assert redis_client.exists(job_key(redis_prefix, job_id, "result")) == 0


def test_redis_completed_job_whose_result_expired_first_is_gone(
    redis_store, redis_client, redis_prefix
):
    job_id = processing_job(redis_store)
    redis_store.complete(job_id, DATA)
    redis_client.delete(job_key(redis_prefix, job_id, "result"))
    assert redis_store.get_encoded(job_id) is None
    assert redis_store.get(job_id) is None


def test_redis_expired_record_is_not_found_for_writers(redis_store, redis_client, redis_prefix):
    job_id = processing_job(redis_store)
    redis_client.pexpire(job_key(redis_prefix, job_id), 20)
    time.sleep(0.1)
    assert redis_store.get(job_id) is None
    with pytest.raises(errors.JobNotFound):
        redis_store.update(job_id, progress=5)


def test_memory_jobs_expire_by_status_ttl():
    clock = FakeClock()
    store = MemoryJobStore(TTLS, clock)
    job_id = processing_job(store)
    clock.advance(TTLS.active - 1)
    store.update(job_id, progress=50)  # a write restarts the TTL
    clock.advance(TTLS.active - 1)
    store.complete(job_id, DATA)
    clock.advance(TTLS.completed - 1)
    assert store.get(job_id)["data"] == DATA
    assert json.loads(store.get_encoded(job_id).data_json) == DATA
    clock.advance(2)
    assert store.get(job_id) is None
    assert store.get_encoded(job_id) is None
    with pytest.raises(errors.JobNotFound):
        store.update(job_id, progress=1)


def test_memory_expired_active_job_is_gone():
    clock = FakeClock()
    store = MemoryJobStore(TTLS, clock)
    job_id = processing_job(store)
    clock.advance(TTLS.active)
    assert store.get(job_id) is None
    assert store.delete(job_id) is False


def test_memory_store_sweeps_expired_jobs_on_create():
    clock = FakeClock()
    store = MemoryJobStore(TTLS, clock)
    for _ in range(20):
        store.create({"job_id": new_id()})
    clock.advance(TTLS.active + 1)
    store.create({"job_id": new_id()})
    assert len(store._jobs) == 1  # nothing else ever reads the expired ones


# --- Redis trouble and start-up ------------------------------------------------------------------


def test_unreachable_redis_is_unavailable_never_not_found(redis_prefix):
    down = RedisJobStore(connect_redis(CLOSED_PORT_URL), TTLS, redis_prefix)
    calls = [
        lambda: down.get(new_id()),
        lambda: down.get_encoded(new_id()),
        lambda: down.create({"job_id": new_id()}),
        lambda: down.update(new_id(), progress=1),
        lambda: down.complete(new_id(), DATA),
        lambda: down.fail(new_id(), "timeout", "slow"),
        lambda: down.delete(new_id()),
    ]
    for call in calls:
        with pytest.raises(errors.JobStoreUnavailable) as caught:
            call()
        assert caught.value.status == 503 and caught.value.code == "job_store_unavailable"
    assert down.ping() is False
    down.close()


def test_client_reconnects_after_its_connection_is_killed(redis_store, redis_client, redis_url):
    job_id = processing_job(redis_store)
    own_id = redis_client.client_id()
    admin = redis.Redis.from_url(redis_url)
    try:
        assert admin.client_kill_filter(_id=own_id) == 1
    finally:
        admin.close()
    assert redis_store.get(job_id)["status"] == "processing"


def test_open_job_store_without_url_uses_memory(caplog):
    with caplog.at_level(logging.WARNING, logger="jobstore"):
        store, state = open_job_store(config.Settings(redis_url=None))
    assert (store.kind, state) == ("memory", "not_configured")
    assert "REDIS_URL is not set" in caplog.text


def test_open_job_store_connects_to_redis(redis_url):
    settings = config.Settings(redis_url=redis_url, redis_completed_ttl=120)
    store, state = open_job_store(settings)
    try:
        assert (store.kind, state) == ("redis", "connected")
        assert store.ping() is True and store.ttls.completed == 120
    finally:
        store.close()


def test_open_job_store_falls_back_when_redis_is_down(caplog):
    url = "redis://:s3cret@127.0.0.1:1/0"
    with caplog.at_level(logging.ERROR, logger="jobstore"):
        store, state = open_job_store(config.Settings(redis_url=url))
    assert (store.kind, state) == ("memory", "disconnected")
    errors_logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors_logged and "unreachable" in errors_logged[0].getMessage()
    assert "s3cret" not in caplog.text
    assert redact_url(url) == "redis://:***@127.0.0.1:1/0"


# --- waiting for a job to end (the long-poll of GET /job?wait=) -----------------------------

WAIT_S = 10.0  # far beyond any wake-up below: a waiter that returns early was woken


@pytest.fixture
def other_store(request, store):
    """The store as another worker sees it: the same object in memory, a second client on Redis."""
    if isinstance(store, MemoryJobStore):
        yield store
        return
    client = connect_redis(request.getfixturevalue("redis_url"))
    yield RedisJobStore(client, TTLS, store.prefix)
    client.close()


def wait_in_thread(store, job_id, timeout_s=WAIT_S, stop=None):
    """Start ``store.wait_ended`` in a thread; return (thread, dict with its elapsed time)."""
    result: dict = {}

    def wait():
        start = time.monotonic()
        store.wait_ended(job_id, timeout_s, stop)
        result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, result


@pytest.mark.parametrize("outcome", ["complete", "fail", "delete"])
def test_wait_ended_wakes_when_another_worker_ends_the_job(store, other_store, outcome):
    job_id = processing_job(store)
    thread, result = wait_in_thread(store, job_id)
    time.sleep(0.2)  # the waiter is subscribed and blocked
    assert thread.is_alive()
    {
        "complete": lambda: other_store.complete(job_id, DATA),
        "fail": lambda: other_store.fail(job_id, "timeout", "too slow"),
        "delete": lambda: other_store.delete(job_id),
    }[outcome]()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert result["elapsed"] < WAIT_S / 2


def test_wait_ended_returns_soon_after_its_stop_event_is_set(store):
    job_id = processing_job(store)
    stop = threading.Event()
    thread, result = wait_in_thread(store, job_id, stop=stop)
    time.sleep(0.2)
    assert thread.is_alive()
    stop.set()  # the worker is shutting down
    thread.join(WAIT_S)
    assert result["elapsed"] < 0.2 + STOP_CHECK_S + 1.0
    assert store.get(job_id)["status"] == "processing"


def test_wait_ended_ignores_progress_writes(store, other_store):
    job_id = processing_job(store)
    thread, result = wait_in_thread(store, job_id, timeout_s=0.6)
    time.sleep(0.1)
    other_store.update(job_id, pages_done=3, progress=40)
    thread.join(WAIT_S)
    assert result["elapsed"] >= 0.6
    assert store.get(job_id)["status"] == "processing"


@pytest.mark.parametrize("state", ["completed", "failed", "unknown", "malformed"])
def test_wait_ended_returns_at_once_when_there_is_nothing_to_wait_for(store, state):
    job_id = processing_job(store)
    if state == "completed":
        store.complete(job_id, DATA)
    elif state == "failed":
        store.fail(job_id, "timeout", "too slow")
    elif state == "unknown":
        job_id = new_id()
    else:
        job_id = "no:such/id"
    start = time.monotonic()
    store.wait_ended(job_id, WAIT_S)
    assert time.monotonic() - start < WAIT_S / 2


def test_wait_ended_sees_an_end_written_just_before_it_subscribed(store, other_store):
    for _ in range(20):  # the end lands at varying points around the subscription
        job_id = processing_job(store)
        thread, result = wait_in_thread(store, job_id)
        other_store.complete(job_id, DATA)
        thread.join(WAIT_S)
        assert result["elapsed"] < WAIT_S / 2


def test_redis_wait_ended_fails_as_store_unavailable():
    store = RedisJobStore(connect_redis(CLOSED_PORT_URL), TTLS, "pdfx-test-closed")
    with pytest.raises(errors.JobStoreUnavailable):
        store.wait_ended(new_id(), 1.0)
