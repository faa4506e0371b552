"""Jobs with send_to_nhost push to a local Hasura-compatible server; identity decides the rows."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from hasura_server import ADMIN_SECRET, JWT_SECRET_SETTING, mint_token

from api import create_app
from tests.servers import GunicornServer
from tests.test_api import make_settings, poll, upload

USER_A = str(uuid.uuid4())
USER_B = str(uuid.uuid4())
BACKEND_KEY = "trusted-backend-key"


def nhost_values(url: str) -> dict:
    """Settings that point the service at the local server."""
    return {
        "nhost_graphql_url": url,
        "nhost_admin_secret": ADMIN_SECRET,
        "nhost_jwt_secret": JWT_SECRET_SETTING,
        "trusted_api_keys": BACKEND_KEY,
        "nhost_timeout_s": 10.0,
    }


@pytest.fixture
def app(hasura, tmp_path):
    """An app (memory store) configured for the local Nhost server."""
    application = create_app(make_settings(tmp_path, **nhost_values(hasura[0])))
    yield application
    application.extensions["pdfx"].jobs.shutdown()


def push_job(client, corpus, headers=None, name="clean/pdflatex-4-pages.pdf", **fields):
    """Upload with send_to_nhost and return the response."""
    return upload(client, corpus / name, headers=headers, send_to_nhost="true", **fields)


class TestPush:
    """A completed job's document and every chunk land in Nhost, exactly once."""

    def test_document_and_all_chunks_land(self, app, hasura, corpus):
        client = app.test_client()
        job = poll(client, push_job(client, corpus).get_json()["job_id"])
        assert job["status"] == "completed", job
        result = job["nhost_result"]
        chunks = job["data"]["chunks"]
        assert result["status"] == "stored" and result["chunks_written"] == len(chunks)
        server = hasura[1]
        documents = server.rows("documents")
        assert [d["job_id"] for d in documents] == [job["job_id"]]
        assert documents[0]["page_count"] == 4 and documents[0]["status"] == "ready_for_embedding"
        rows = sorted(server.rows("document_chunks"), key=lambda r: r["chunk_index"])
        assert [r["content"] for r in rows] == [c["text"] for c in chunks]
        assert [r["pages"] for r in rows] == [c["pages"] for c in chunks]

    def test_unreachable_nhost_keeps_the_extraction(self, corpus, tmp_path):
        values = nhost_values("http://127.0.0.1:9/v1") | {"nhost_timeout_s": 2.0}
        app = create_app(make_settings(tmp_path, **values))
        client = app.test_client()
        job = poll(client, push_job(client, corpus).get_json()["job_id"])
        assert job["status"] == "completed" and len(job["data"]["text"]) == 4
        assert job["nhost_result"]["status"] == "failed"
        assert job["nhost_result"]["error_code"] in ("nhost_unreachable", "nhost_timeout")
        app.extensions["pdfx"].jobs.shutdown()

    def test_without_send_to_nhost_nothing_is_pushed(self, app, hasura, corpus):
        client = app.test_client()
        job_id = upload(client, corpus / "clean/minimal-document.pdf").get_json()["job_id"]
        job = poll(client, job_id)
        assert "nhost_result" not in job and hasura[1].request_count == 0


class TestIdentity:
    """Rows belong to the token's user, or to a user_id only a trusted key may name."""

    def test_token_user_owns_the_rows_and_token_is_forwarded(self, app, hasura, corpus):
        client = app.test_client()
        token = mint_token(USER_A)
        headers = {"Authorization": f"Bearer {token}"}
        response = push_job(client, corpus, headers)
        job = poll(client, response.get_json()["job_id"], headers)  # the user owns the job
        assert job["nhost_result"]["status"] == "stored", job["nhost_result"]
        assert [str(d["user_id"]) for d in hasura[1].rows("documents")] == [USER_A]
        sent = hasura[1].received
        assert sent and all(r.headers.get("authorization") == f"Bearer {token}" for r in sent)
        assert all("x-hasura-admin-secret" not in r.headers for r in sent)
        assert token not in repr(app.extensions["pdfx"].store.get(job["job_id"]))

    def test_token_for_a_cannot_write_for_b(self, app, corpus):
        client = app.test_client()
        headers = {"Authorization": f"Bearer {mint_token(USER_A)}"}
        response = push_job(client, corpus, headers, user_id=USER_B)
        assert response.status_code == 403
        assert response.get_json()["error_code"] == "forbidden_user"

    @pytest.mark.parametrize(
        ("token", "code"),
        [
            (mint_token(USER_A, expires_in=-60), "token_expired"),
            (mint_token(USER_A, key="not-the-key-0123456789abcdef0123456789"), "invalid_token"),
        ],
    )
    def test_expired_or_forged_token_is_401(self, app, corpus, token, code):
        response = push_job(app.test_client(), corpus, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and response.get_json()["error_code"] == code

    def test_user_id_needs_a_trusted_key(self, app, hasura, corpus):
        client = app.test_client()
        denied = push_job(client, corpus, {"X-API-Key": "some-other-key"}, user_id=USER_B)
        assert denied.status_code == 403
        allowed = push_job(client, corpus, {"X-API-Key": BACKEND_KEY}, user_id=USER_B)
        assert allowed.status_code == 202
        job = poll(client, allowed.get_json()["job_id"])
        assert job["nhost_result"]["status"] == "stored"
        assert [str(d["user_id"]) for d in hasura[1].rows("documents")] == [USER_B]


class TestHealth:
    """/health names Nhost's state without ever showing the secret."""

    def test_configured(self, app):
        body = app.test_client().get("/health").get_json()
        assert body["nhost"] == "configured" and ADMIN_SECRET not in repr(body)

    def test_unreachable(self, tmp_path):
        app = create_app(make_settings(tmp_path, **nhost_values("http://127.0.0.1:9/v1")))
        assert app.test_client().get("/health").get_json()["nhost"] == "unreachable"
        app.extensions["pdfx"].jobs.shutdown()


@pytest.mark.e2e
def test_large_document_over_gunicorn(hasura, redis_url, redis_prefix, corpus, tmp_path):
    """freeculture.pdf (352 pages) pushed through 2 gunicorn workers: all chunks, few requests."""
    url, server = hasura
    env = {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "UPLOAD_DIR": str(tmp_path),
        "NHOST_GRAPHQL_URL": url,
        "NHOST_ADMIN_SECRET": ADMIN_SECRET,
        "RATELIMIT_ENABLED": "false",  # polls every 0.2 s; the limits have their own tests
    }
    with GunicornServer(env, tmp_path / "gunicorn.log") as gunicorn:
        server.reset_log()  # start-up health checks probed Nhost; count only the push
        path = corpus / "clean/freeculture.pdf"
        with path.open("rb") as handle:
            response = requests.post(
                f"{gunicorn.url}/extract/async",
                data={"send_to_nhost": "true"},
                files={"file": (path.name, handle)},
                timeout=30,
            )
        status_url = gunicorn.url + response.json()["status_url"]
        deadline = time.monotonic() + 120
        while (job := requests.get(status_url, timeout=10).json())["status"] not in (
            "completed",
            "failed",
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
    chunks = job["data"]["chunks"]
    assert (
        job["nhost_result"]["chunks_written"] == len(chunks) == len(server.rows("document_chunks"))
    )
    batches = -(-len(chunks) // 100)
    assert server.request_count == 1 + batches + 1
    print(f"\nfreeculture.pdf: {len(chunks)} chunks in {server.request_count} Nhost requests")
