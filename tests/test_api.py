"""The HTTP API through Flask's test client, on both job stores, with real corpus PDFs."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from api import PUBLIC_JOB_FIELDS, SECURITY_HEADERS, create_app, key_owner, public_job
from config import Settings
from jobstore import job_key

POLL_DEADLINE_S = 60
KEYS = ("key-a", "key-b")
# Nested, non-ASCII, numbers of every kind: what a stored result must come back as.
RESULT = {
    "metadata": {"num_pages": 2, "title": "Ünïcödé “quotes” \u2028"},
    "text": {"page_1": {"text": "héllo\nwörld", "chars": 11}, "page_2": {"text": ""}},
    "chunks": [{"id": 0, "pages": [1, 2], "score": 0.1, "big": 2**70, "none": None}],
    "warnings": [],
}


def make_settings(tmp_path: Path, **overrides) -> Settings:
    """Settings for a test app: private upload dir, no Redis unless given."""
    values = {"redis_url": None, "upload_dir": str(tmp_path), "extract_workers": 2}
    values["ratelimit_enabled"] = False  # the limits have their own tests
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(params=["memory", "redis"])
def app(request, tmp_path):
    """An app on the in-memory store and one on a real Redis."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        settings = make_settings(tmp_path, redis_url=url, redis_key_prefix=prefix)
    else:
        settings = make_settings(tmp_path)
    application = create_app(settings)
    yield application
    application.extensions["pdfx"].jobs.shutdown()
    application.extensions["pdfx"].store.close()  # its pooled sockets, a long-poll's among them


@pytest.fixture
def client(app):
    return app.test_client()


def upload(client, path: Path, route: str = "/extract/async", headers=None, **fields):
    """POST a file as multipart with extra form fields (encoded in memory, no temp file)."""
    name = fields.pop("name", path.name)
    values: dict = {key: str(value) for key, value in fields.items()}
    values["file"] = FileStorage(io.BytesIO(path.read_bytes()), name)
    boundary, body = encode_multipart(values)
    content_type = f"multipart/form-data; boundary={boundary}"
    return client.post(route, data=body, content_type=content_type, headers=headers or {})


def poll(client, job_id: str, headers: dict | None = None) -> dict:
    """Poll a job until it is terminal (with the caller's credentials: jobs are owned)."""
    deadline = time.monotonic() + POLL_DEADLINE_S
    while time.monotonic() < deadline:
        body = client.get(f"/job/{job_id}", headers=headers or {}).get_json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {body}")


def squash(text: str) -> str:
    return " ".join(text.split())


def stored_job(store, status: str, owner: str | None = None, **fields) -> str:
    """Put a job straight into the store, in ``status``; return its id."""
    job_id = uuid.uuid4().hex
    store.create({"job_id": job_id, "filename": "a.pdf", "owner": owner})
    if status != "queued":
        store.update(job_id, status="processing", stage="reading", pages_total=2, pages_done=1)
    if status == "completed":
        store.complete(job_id, RESULT, pages_done=2, message="done")
    elif status == "failed":
        store.fail(job_id, "corrupt_pdf", "The file is damaged.")
    if fields:
        store.update(job_id, **fields)
    return job_id


def expire_now(store, job_id: str) -> None:
    """Let a job's TTL run out now, as the store would: its tombstone stays."""
    if store.kind == "redis":
        prefix = store.prefix
        store.client.delete(job_key(prefix, job_id), job_key(prefix, job_id, "result"))
    else:
        del store._jobs[job_id]


def jsonified(app, record: dict) -> bytes:
    """Return the body jsonify gives for a record's public view."""
    with app.app_context():
        return app.json.response(public_job(record)).get_data()


class TestAsyncExtraction:
    """POST /extract/async answers 202 at once and the job ends with per-page text and chunks."""

    def test_accepts_and_completes_multi_page_pdf(self, client, corpus):
        response = upload(client, corpus / "clean/pdflatex-4-pages.pdf")
        assert response.status_code == 202
        body = response.get_json()
        assert body["success"] is True and body["status"] == "queued"
        assert response.headers["Location"] == body["status_url"] == f"/job/{body['job_id']}"
        job = poll(client, body["job_id"])
        assert job["status"] == "completed", job
        assert job["stage"] == "done" and job["progress"] == 100
        assert job["pages_done"] == job["pages_total"] == 4
        data = job["data"]
        assert sorted(data["text"]) == ["page_1", "page_2", "page_3", "page_4"]
        assert squash(data["text"]["page_1"]["text"]).startswith("Hello, here is some text")
        assert data["metadata"]["num_pages"] == 4
        assert data["chunks"] and all(c["char_count"] <= 2000 for c in data["chunks"])
        assert {p for c in data["chunks"] for p in c["pages"]} == {1, 2, 3, 4}

    def test_a_large_upload_is_stored_byte_for_byte(self, client, corpus):
        # 3.8 MB: read through LargeBodyReads' 1 MB buffer
        path = corpus / "clean/2022_Q3_INTC.pdf"
        job_id = upload(client, path, extract_type="metadata").get_json()["job_id"]
        job = poll(client, job_id)
        assert job["status"] == "completed", job
        assert job["data"]["security"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert job["data"]["metadata"]["num_pages"] == 61

    def test_page_selection_limits_text_and_chunk_pages(self, client, corpus):
        job_id = upload(client, corpus / "clean/pdflatex-4-pages.pdf", pages="2-3").get_json()[
            "job_id"
        ]
        job = poll(client, job_id)
        assert sorted(job["data"]["text"]) == ["page_2", "page_3"]
        assert {p for c in job["data"]["chunks"] for p in c["pages"]} <= {2, 3}

    def test_job_record_never_holds_the_password(self, app, client, corpus):
        path = corpus / "encrypted/libreoffice-writer-password.pdf"
        job_id = upload(client, path, password="openpassword").get_json()["job_id"]
        job = poll(client, job_id)
        assert job["status"] == "completed"
        stored = app.extensions["pdfx"].store.get(job_id)
        assert "openpassword" not in repr(stored)

    @pytest.mark.parametrize(
        ("name", "fields", "code"),
        [
            ("encrypted/libreoffice-writer-password.pdf", {}, "password_required"),
            ("encrypted/libreoffice-writer-password.pdf", {"password": "nope"}, "wrong_password"),
            ("image-only/bitmap-mmr.pdf", {}, "no_text_layer"),
            ("clean/pdflatex-4-pages.pdf", {"pages": "7"}, "invalid_pages"),
        ],
    )
    def test_typed_failures(self, client, corpus, name, fields, code):
        job_id = upload(client, corpus / name, **fields).get_json()["job_id"]
        job = poll(client, job_id)
        assert job["status"] == "failed" and job["stage"] == "failed"
        assert job["error_code"] == code and job["error"]

    def test_too_many_pages_fails_the_job(self, app, corpus, tmp_path):
        small = create_app(make_settings(tmp_path, max_pages=2))
        job_id = upload(small.test_client(), corpus / "clean/pdflatex-4-pages.pdf").get_json()[
            "job_id"
        ]
        assert poll(small.test_client(), job_id)["error_code"] == "too_many_pages"
        small.extensions["pdfx"].jobs.shutdown()

    def test_upload_dir_is_empty_after_jobs(self, app, client, corpus, tmp_path):
        ok = upload(client, corpus / "clean/minimal-document.pdf").get_json()["job_id"]
        bad = upload(client, corpus / "image-only/bitmap-mmr.pdf").get_json()["job_id"]
        poll(client, ok), poll(client, bad)
        app.extensions["pdfx"].jobs.wait(ok, 5), app.extensions["pdfx"].jobs.wait(bad, 5)
        assert list(tmp_path.iterdir()) == []


class TestPolling:
    """GET /job/<id>: the same body, headers and errors whether the job is running or done."""

    @pytest.mark.parametrize("status", ["queued", "processing", "completed", "failed"])
    def test_body_is_the_jsonified_public_view(self, app, client, status):
        store = app.extensions["pdfx"].store
        job_id = stored_job(store, status)
        response = client.get(f"/job/{job_id}")
        assert response.status_code == 200 and response.content_type == "application/json"
        assert response.data == jsonified(app, store.get(job_id))
        assert response.headers["Content-Length"] == str(len(response.data))
        body = response.get_json()
        assert list(body)[: len(PUBLIC_JOB_FIELDS)] == list(PUBLIC_JOB_FIELDS)
        assert ("data" in body) == (status == "completed")

    def test_completed_body_keeps_data_in_place_and_later_members(self, app, client):
        store = app.extensions["pdfx"].store
        webhook = {"event_id": "e1", "delivered": True, "attempts": 1}
        job_id = stored_job(store, "completed", webhook=webhook)
        response = client.get(f"/job/{job_id}")
        assert response.data == jsonified(app, store.get(job_id))
        body = json.loads(response.data)
        assert body["data"] == RESULT and body["webhook"] == webhook
        assert list(body)[-2:] == ["data", "webhook"]
        assert body["status"] == "completed" and body["pages_done"] == 2

    def test_completed_response_has_every_header(self, tmp_path, request):
        app = create_app(make_settings(tmp_path, cors_origins="https://app.example"))
        request.addfinalizer(app.extensions["pdfx"].jobs.shutdown)
        job_id = stored_job(app.extensions["pdfx"].store, "completed")
        headers = {"X-Request-ID": "poll-1", "Origin": "https://app.example"}
        response = app.test_client().get(f"/job/{job_id}", headers=headers)
        assert response.status_code == 200 and response.headers["X-Request-ID"] == "poll-1"
        assert all(response.headers[name] == value for name, value in SECURITY_HEADERS.items())
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"

    @pytest.mark.parametrize("status", ["processing", "completed"])
    def test_another_callers_job_is_404(self, tmp_path, request, status):
        app = create_app(make_settings(tmp_path, api_keys=",".join(KEYS)))
        request.addfinalizer(app.extensions["pdfx"].jobs.shutdown)
        job_id = stored_job(app.extensions["pdfx"].store, status, owner=key_owner(KEYS[0]))
        client = app.test_client()
        mine = client.get(f"/job/{job_id}", headers={"X-API-Key": KEYS[0]})
        theirs = client.get(f"/job/{job_id}", headers={"X-API-Key": KEYS[1]})
        assert mine.status_code == 200 and mine.get_json()["status"] == status
        assert theirs.status_code == 404 and theirs.get_json()["error_code"] == "job_not_found"
        assert client.get(f"/job/{job_id}").status_code == 401

    @pytest.mark.parametrize("status", ["processing", "completed"])
    def test_expired_job_is_410(self, app, client, status):
        store = app.extensions["pdfx"].store
        job_id = stored_job(store, status)
        expire_now(store, job_id)
        response = client.get(f"/job/{job_id}")
        assert response.status_code == 410
        assert response.get_json()["error_code"] == "job_expired"

    def test_unreachable_store_is_503_with_retry_after(
        self, tmp_path, request, redis_url, redis_prefix, monkeypatch
    ):
        settings = make_settings(tmp_path, redis_url=redis_url, redis_key_prefix=redis_prefix)
        app = create_app(settings)
        request.addfinalizer(app.extensions["pdfx"].jobs.shutdown)
        store = app.extensions["pdfx"].store
        job_id = stored_job(store, "completed")

        def down(*_args, **_kwargs):
            raise redis.ConnectionError("Redis went away")

        monkeypatch.setattr(store.client, "mget", down)
        response = app.test_client().get(f"/job/{job_id}")
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        assert response.get_json()["error_code"] == "job_store_unavailable"


class TestLongPoll:
    """``GET /job/<id>?wait=S`` answers when the job ends, or after S seconds at most."""

    def test_wait_answers_the_moment_the_job_completes(self, app, client):
        store = app.extensions["pdfx"].store
        job_id = stored_job(store, "processing")
        finisher = threading.Timer(0.3, lambda: store.complete(job_id, RESULT, pages_done=2))
        finisher.start()
        start = time.monotonic()
        response = client.get(f"/job/{job_id}?wait=20")
        elapsed = time.monotonic() - start
        finisher.join()
        assert response.status_code == 200
        assert response.get_json()["status"] == "completed"
        assert response.get_json()["data"] == RESULT
        assert 0.3 <= elapsed < 10

    def test_wait_on_a_running_job_ends_after_wait_with_its_state(self, app, client):
        job_id = stored_job(app.extensions["pdfx"].store, "processing")
        start = time.monotonic()
        body = client.get(f"/job/{job_id}?wait=0.5").get_json()
        assert time.monotonic() - start >= 0.5
        assert body["status"] == "processing" and "data" not in body

    def test_wait_is_capped_by_job_wait_max_s(self, tmp_path, request):
        app = create_app(make_settings(tmp_path, job_wait_max_s=0.3))
        request.addfinalizer(app.extensions["pdfx"].jobs.shutdown)
        job_id = stored_job(app.extensions["pdfx"].store, "processing")
        start = time.monotonic()
        assert app.test_client().get(f"/job/{job_id}?wait=60").status_code == 200
        assert 0.3 <= time.monotonic() - start < 10

    def test_no_free_wait_slot_answers_at_once(self, tmp_path, request):
        app = create_app(make_settings(tmp_path, job_wait_slots=1))
        request.addfinalizer(app.extensions["pdfx"].jobs.shutdown)
        store = app.extensions["pdfx"].store
        first, second = stored_job(store, "processing"), stored_job(store, "processing")
        holder = threading.Thread(target=lambda: app.test_client().get(f"/job/{first}?wait=2"))
        holder.start()
        time.sleep(0.2)  # the one slot is taken
        start = time.monotonic()
        body = app.test_client().get(f"/job/{second}?wait=20").get_json()
        assert time.monotonic() - start < 1.5 and body["status"] == "processing"
        holder.join()

    def test_zero_wait_slots_turn_the_long_poll_off(self, tmp_path, request):
        app = create_app(make_settings(tmp_path, job_wait_slots=0))
        request.addfinalizer(app.extensions["pdfx"].jobs.shutdown)
        job_id = stored_job(app.extensions["pdfx"].store, "processing")
        start = time.monotonic()
        body = app.test_client().get(f"/job/{job_id}?wait=20").get_json()
        assert time.monotonic() - start < 5 and body["status"] == "processing"

    def test_a_stopping_worker_answers_its_long_polls_at_once(self, app, client):
        job_id = stored_job(app.extensions["pdfx"].store, "processing")
        bodies: list[dict] = []
        waiting = threading.Thread(
            target=lambda: bodies.append(app.test_client().get(f"/job/{job_id}?wait=20").json)
        )
        waiting.start()
        time.sleep(0.3)  # the long-poll waits
        start = time.monotonic()
        app.extensions["pdfx"].jobs.stop_waits()  # what the worker's SIGTERM does
        waiting.join(10)
        assert time.monotonic() - start < 2 and bodies[0]["status"] == "processing"
        start = time.monotonic()  # and a long-poll that comes later does not wait
        assert client.get(f"/job/{job_id}?wait=20").get_json()["status"] == "processing"
        assert time.monotonic() - start < 2

    @pytest.mark.parametrize("status", ["completed", "failed"])
    def test_wait_on_an_ended_job_answers_at_once(self, app, client, status):
        job_id = stored_job(app.extensions["pdfx"].store, status)
        start = time.monotonic()
        assert client.get(f"/job/{job_id}?wait=20").get_json()["status"] == status
        assert time.monotonic() - start < 5

    @pytest.mark.parametrize("wait", ["abc", "-1", "1e3", "nan", "1.23456"])
    def test_malformed_wait_is_400(self, app, client, wait):
        job_id = stored_job(app.extensions["pdfx"].store, "processing")
        response = client.get(f"/job/{job_id}?wait={wait}")
        assert response.status_code == 400
        assert response.get_json()["error_code"] == "invalid_field"

    def test_another_callers_job_is_404_without_waiting(self, tmp_path, request):
        app = create_app(make_settings(tmp_path, api_keys=",".join(KEYS)))
        request.addfinalizer(app.extensions["pdfx"].jobs.shutdown)
        job_id = stored_job(app.extensions["pdfx"].store, "processing", owner=key_owner(KEYS[0]))
        start = time.monotonic()
        theirs = app.test_client().get(f"/job/{job_id}?wait=20", headers={"X-API-Key": KEYS[1]})
        assert theirs.status_code == 404 and time.monotonic() - start < 5

    def test_upload_then_wait_returns_the_real_result(self, client, corpus):
        job_id = upload(client, corpus / "clean/2022_Q3_AAPL.pdf").get_json()["job_id"]
        body = client.get(f"/job/{job_id}?wait=60").get_json()
        assert body["status"] == "completed" and body["data"]["metadata"]["num_pages"] == 28


class TestRejectedUploads:
    """Bad input is a 4xx JSON error with a stable code, before anything is queued."""

    def test_missing_file(self, client):
        response = client.post("/extract/async", data={}, content_type="multipart/form-data")
        assert response.status_code == 400
        assert response.get_json()["error_code"] == "missing_file"

    def test_wrong_extension(self, client, corpus):
        response = upload(client, corpus / "clean/minimal-document.pdf", name="doc.txt")
        assert response.status_code == 400
        assert response.get_json()["error_code"] == "invalid_file_type"

    def test_not_a_pdf(self, client, tmp_path):
        fake = tmp_path / "fake.pdf"
        fake.write_bytes(b"<html>" + b"x" * 500)
        response = upload(client, fake)
        # libmagic sees HTML: refused by its MIME type before the %PDF- check.
        assert response.get_json()["error_code"] == "invalid_mime_type"

    def test_too_small(self, client, tmp_path):
        tiny = tmp_path / "tiny.pdf"
        tiny.write_bytes(b"%PDF-1.4\n%%EOF")
        assert upload(client, tiny).get_json()["error_code"] == "file_too_small"

    @pytest.mark.parametrize("pages", ["abc", "0", "5-2", "1,,2", "-3"])
    def test_malformed_pages_spec(self, client, corpus, pages):
        response = upload(client, corpus / "clean/minimal-document.pdf", pages=pages)
        assert response.status_code == 400
        assert response.get_json()["error_code"] == "invalid_pages_spec"

    def test_chunk_size_over_max(self, client, corpus):
        response = upload(client, corpus / "clean/minimal-document.pdf", chunk_size=5000)
        assert response.status_code == 400
        assert response.get_json()["error_code"] == "invalid_field"

    def test_over_max_upload_is_413_json(self, corpus, tmp_path):
        app = create_app(make_settings(tmp_path, max_upload_mb=1))
        big = tmp_path / "big.pdf"
        big.write_bytes(b"%PDF-1.7\n" + b"0" * (3 * 1024 * 1024))
        # Encoded in memory: the test client's own temp file would leak on a 413.
        boundary, body = encode_multipart(
            {"file": FileStorage(io.BytesIO(big.read_bytes()), "big.pdf")}
        )
        response = app.test_client().post(
            "/extract/async",
            data=body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )
        assert response.status_code == 413
        assert response.get_json()["error_code"] == "file_too_large"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith("pdfx-job-")]
        app.extensions["pdfx"].jobs.shutdown()

    def test_unknown_job_is_404_json(self, client):
        response = client.get("/job/does-not-exist")
        assert response.status_code == 404
        assert response.get_json()["error"] == "Job not found"
        assert response.get_json()["error_code"] == "job_not_found"

    def test_wrong_method_is_405_json(self, client):
        response = client.get("/extract/async")
        assert response.status_code == 405
        assert response.get_json()["error_code"] == "method_not_allowed"


class TestSyncRoutes:
    """POST /extract and its shortcuts run the same pipeline and wait for the result."""

    def test_extract_waits_for_data(self, client, corpus):
        response = upload(client, corpus / "clean/pdflatex-4-pages.pdf", route="/extract")
        assert response.status_code == 200
        body = response.get_json()
        assert body["success"] is True and body["filename"] == "pdflatex-4-pages.pdf"
        assert len(body["data"]["text"]) == 4
        assert list(body) == ["success", "job_id", "filename", "data"]
        assert response.content_type == "application/json"

    def test_metadata_shortcut_has_no_text(self, client, corpus):
        response = upload(client, corpus / "clean/pdflatex-4-pages.pdf", route="/extract/metadata")
        data = response.get_json()["data"]
        assert data["metadata"]["num_pages"] == 4 and "text" not in data

    def test_tables_shortcut_returns_tables(self, client, corpus):
        response = upload(
            client, corpus / "clean/2022_Q3_AAPL.pdf", route="/extract/tables", pages="3-4"
        )
        data = response.get_json()["data"]
        assert any(data["tables"].values())

    def test_failure_is_422_with_code(self, client, corpus):
        response = upload(
            client, corpus / "clean/pdflatex-4-pages.pdf", route="/extract/text", pages="9"
        )
        assert response.status_code == 422
        assert response.get_json()["error_code"] == "invalid_pages"

    def test_timeout_is_504_with_job_id(self, corpus, tmp_path):
        app = create_app(make_settings(tmp_path, sync_timeout_s=0.01))
        response = upload(
            app.test_client(), corpus / "clean/GeoTopo-komprimiert.pdf", route="/extract"
        )
        body = response.get_json()
        assert response.status_code == 504 and body["error_code"] == "sync_timeout"
        assert poll(app.test_client(), body["job_id"])["status"] == "completed"
        app.extensions["pdfx"].jobs.shutdown()


class TestHealth:
    """GET /health reports the job store; / lists the routes."""

    def test_health(self, app, client):
        body = client.get("/health").get_json()
        assert body["status"] == "healthy" and body["service"] == "PDF Extractor API"
        kind = app.extensions["pdfx"].store.kind
        assert body["job_store"] == kind
        assert body["redis"] == ("connected" if kind == "redis" else "not_configured")

    def test_unreachable_redis_at_start_serves_from_memory_degraded(self, tmp_path):
        app = create_app(make_settings(tmp_path, redis_url="redis://127.0.0.1:1/0"))
        body = app.test_client().get("/health").get_json()
        assert body == {
            "status": "degraded",
            "service": "PDF Extractor API",
            "redis": "disconnected",
            "job_store": "memory",
            "nhost": "not_configured",
        }
        app.extensions["pdfx"].jobs.shutdown()

    def test_index_lists_routes(self, client):
        assert "POST /extract/async" in client.get("/").get_json()["routes"]
