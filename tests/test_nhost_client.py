"""The Nhost push against a real local Hasura-compatible server backed by PostgreSQL."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pypdfium2
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hasura_server import (
    ADMIN_SECRET,
    JWT_KEY,
    JWT_SECRET_SETTING,
    mint_token,
)

import errors
import nhost_client
from config import load_settings
from nhost_auth import (
    ForbiddenUser,
    InvalidToken,
    NhostIdentity,
    NhostNotConfigured,
    TokenExpired,
    resolve_nhost_identity,
)
from nhost_client import NhostClient, config_problems, nhost_status, retry_policy

USER_A = "11111111-1111-4111-8111-111111111111"
USER_B = "22222222-2222-4222-8222-222222222222"
HOSTILE = (
    "He said \"hi\" 'there' {braces} }{ $vars \\ back\\\\slash \\n not-a-newline\n"
    'real newline\ttab — ünïcödé 日本語 עברית 🧪 e\u0301 "); drop table documents; --'
)
ADMIN = NhostIdentity()


def nhost_settings(url: str | None, **overrides):
    values = {
        "nhost_graphql_url": url,
        "nhost_admin_secret": ADMIN_SECRET,
        "nhost_jwt_secret": JWT_SECRET_SETTING,
        "nhost_timeout_s": 10.0,
        "trusted_api_keys": "backend-key",
        "nhost_subdomain": None,
        "nhost_region": None,
    }
    return load_settings(**{**values, **overrides})


def synthetic_chunks(count: int, text: str = "chunk") -> list[dict]:
    return [
        {
            "chunk_index": i,
            "text": f"{text} {i}",
            "char_count": len(f"{text} {i}"),
            "pages": [i // 10 + 1],
            "start_page": i // 10 + 1,
            "end_page": i // 10 + 1,
        }
        for i in range(count)
    ]


def job_data(chunks: list[dict], pages: int = 1) -> dict:
    return {"metadata": {"num_pages": pages, "title": "t"}, "chunks": chunks}


def push(
    url: str,
    chunks: list[dict],
    identity: NhostIdentity = ADMIN,
    job_id: str | None = None,
    **overrides,
) -> dict:
    client = NhostClient(nhost_settings(url, **overrides))
    return client.push_document(
        job_id=job_id or str(uuid.uuid4()),
        filename="a.pdf",
        upload_device="web",
        user_id=identity.user_id,
        data=job_data(chunks),
        identity=identity,
    )


def chunk_requests(server) -> list:
    return [r for r in server.received if r.body and "UpsertChunks" in r.body["query"]]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def corpus_chunks(path) -> tuple[list[dict], int]:
    pdf = pypdfium2.PdfDocument(path)
    pages = [(i + 1, pdf[i].get_textpage().get_text_range()) for i in range(len(pdf))]
    pdf.close()
    try:
        from chunking import chunk_pages
    except ImportError:
        return [
            {"chunk_index": i, "text": t, "pages": [n], "start_page": n, "end_page": n}
            for i, (n, t) in enumerate(pages)
        ], len(pages)
    return chunk_pages(pages, 1500, 400)[0], len(pages)


# ---------------------------------------------------------------- writes


def test_corpus_pdf_chunks_land_with_pages(hasura, corpus):
    url, server = hasura
    chunks, page_count = corpus_chunks(corpus / "clean" / "pdflatex-4-pages.pdf")
    identity = NhostIdentity(user_id=USER_A)
    client = NhostClient(nhost_settings(url))
    result = client.push_document(
        job_id="job-1",
        filename="pdflatex-4-pages.pdf",
        upload_device="web",
        user_id=USER_A,
        data=job_data(chunks, page_count),
        identity=identity,
    )
    assert result == {
        "status": "stored",
        "document_id": result["document_id"],
        "chunks_written": len(chunks),
        "error_code": None,
        "error": None,
    }
    [document] = server.rows("documents")
    assert str(document["id"]) == result["document_id"] and str(document["user_id"]) == USER_A
    assert (document["page_count"], document["status"]) == (4, "ready_for_embedding")
    rows = server.rows("document_chunks", order="chunk_index")
    assert [r["content"] for r in rows] == [c["text"] for c in chunks]
    assert [r["pages"] for r in rows] == [c["pages"] for c in chunks]
    assert {p for r in rows for p in r["pages"]} == {1, 2, 3, 4}


def test_retried_job_does_not_duplicate(hasura):
    url, server = hasura
    first = push(url, synthetic_chunks(5), job_id="job-again")
    second = push(url, synthetic_chunks(5), job_id="job-again")
    assert second["status"] == "stored" and second["document_id"] == first["document_id"]
    assert len(server.rows("documents")) == 1 and len(server.rows("document_chunks")) == 5


def test_server_error_is_retried_once(hasura):
    url, server = hasura
    server.fail_next(1, status=500)
    result = push(url, synthetic_chunks(3))
    assert result["status"] == "stored"
    assert [r.status for r in server.received] == [500, 200, 200, 200]
    assert server.received[0].body == server.received[1].body  # the same call, retried


def test_dropped_connection_is_retried(hasura):
    url, server = hasura
    server.disconnect_next(1)
    assert push(url, synthetic_chunks(2))["status"] == "stored"
    assert server.request_count == 4


def test_429_waits_for_retry_after(hasura):
    url, server = hasura
    server.fail_next(1, status=429, retry_after="1")
    started = time.monotonic()
    result = push(url, synthetic_chunks(2))
    assert result["status"] == "stored" and time.monotonic() - started >= 0.9
    assert [r.status for r in server.received][:2] == [429, 200]


def test_persistent_500_fails_after_bounded_retries(hasura):
    url, server = hasura
    server.fail_next(50, status=503)
    result = push(url, synthetic_chunks(2))
    assert (result["status"], result["error_code"]) == ("failed", "nhost_http_error")
    assert server.request_count == retry_policy(10.0).total + 1


def test_validation_failed_is_not_retried(hasura):
    url, server = hasura
    result = push(url, synthetic_chunks(2), nhost_documents_table="no_such_table")
    assert (result["status"], result["error_code"]) == ("failed", "nhost_invalid")
    assert "validation-failed" in result["error"] and server.request_count == 1


def test_hostile_text_arrives_byte_for_byte_through_variables(hasura):
    url, server = hasura
    chunks = [{"chunk_index": 0, "text": HOSTILE, "pages": [1]}]
    result = push(url, chunks)
    assert result["status"] == "stored"
    assert server.rows("document_chunks")[0]["content"] == HOSTILE
    assert len(server.rows("documents")) == 1
    assert all("drop table" not in r.body["query"] for r in server.received)


def test_batch_boundary_is_exact(hasura):
    url, server = hasura
    result = push(url, synthetic_chunks(250), nhost_batch_size=100)
    assert result["chunks_written"] == 250 and len(server.rows("document_chunks")) == 250
    sizes = [len(r.body["variables"]["objects"]) for r in chunk_requests(server)]
    assert sizes == [100, 100, 50] and server.request_count == 5


def test_shortfall_is_reported(hasura):
    url, server = hasura
    server.execute(
        "create function skip_marked() returns trigger language plpgsql as "
        "$$ begin if new.content = 'skip 3' then return null; end if; return new; end $$;"
        "create trigger skip_marked before insert on document_chunks "
        "for each row execute function skip_marked();"
    )
    result = push(url, synthetic_chunks(6, text="skip"))
    assert (result["status"], result["error_code"]) == ("failed", "nhost_incomplete")
    assert result["chunks_written"] == 5 and "5 of 6" in result["error"]
    assert server.rows("documents")[0]["status"] != "ready_for_embedding"


def test_malformed_result_fails_without_raising(hasura):
    url, server = hasura
    result = push(url, [{"text": "no index"}])
    assert (result["status"], result["error_code"]) == ("failed", "nhost_invalid")
    assert server.request_count == 0


def test_unreachable_and_wrong_url_fail_without_raising(hasura):
    url, _ = hasura
    unreachable = push(closed_port_url(), synthetic_chunks(1), nhost_timeout_s=2.0)
    assert (unreachable["status"], unreachable["error_code"]) == ("failed", "nhost_unreachable")
    missing = push(url.replace("/v1", "/v2"), synthetic_chunks(1))
    assert missing["error_code"] == "nhost_http_error" and "404" in missing["error"]


def test_not_configured_is_skipped():
    result = push(None, synthetic_chunks(1))
    assert (result["status"], result["error_code"]) == ("skipped", "nhost_not_configured")
    no_secret = push("http://127.0.0.1:9/v1", synthetic_chunks(1), nhost_admin_secret=None)
    assert no_secret["status"] == "skipped"


def test_table_names_are_validated_at_construction():
    with pytest.raises(NhostNotConfigured):
        NhostClient(nhost_settings("http://x/v1", nhost_chunks_table="chunks; drop table x"))


# ---------------------------------------------------------------- whose data


def test_user_token_writes_with_the_token_not_the_admin_secret(hasura):
    url, server = hasura
    settings = nhost_settings(url)
    identity = resolve_nhost_identity(settings, None, mint_token(USER_A), None)
    assert identity.user_id == USER_A and not identity.uses_admin_secret
    result = push(url, synthetic_chunks(3), identity=identity)
    assert result["status"] == "stored"
    assert str(server.rows("documents")[0]["user_id"]) == USER_A
    for received in server.received:
        assert received.headers["authorization"] == f"Bearer {identity.token}"
        assert "x-hasura-admin-secret" not in received.headers


def test_token_for_a_cannot_write_for_b(hasura):
    url, server = hasura
    settings = nhost_settings(url)
    with pytest.raises(ForbiddenUser) as caught:
        resolve_nhost_identity(settings, None, mint_token(USER_A), USER_B)
    assert caught.value.status == 403 and caught.value.code == "forbidden_user"
    forged = NhostIdentity(user_id=USER_B, token=mint_token(USER_A))
    result = push(url, synthetic_chunks(2), identity=forged)
    assert (result["status"], result["error_code"]) == ("failed", "nhost_forbidden")
    assert "permission-error" in result["error"] and server.rows("documents") == []


def test_only_trusted_keys_may_name_a_user():
    settings = nhost_settings("http://x/v1")
    trusted = resolve_nhost_identity(settings, "backend-key", None, USER_B)
    assert trusted == NhostIdentity(user_id=USER_B) and trusted.uses_admin_secret
    with pytest.raises(ForbiddenUser):
        resolve_nhost_identity(settings, "other-key", None, USER_B)
    with pytest.raises(errors.InvalidField):
        resolve_nhost_identity(settings, "backend-key", None, "not-a-uuid")
    assert resolve_nhost_identity(settings, "other-key", None, None) == NhostIdentity()


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (lambda: mint_token(USER_A, expires_in=-60), TokenExpired),
        (lambda: mint_token(USER_A, key="another-key-0123456789abcdef0123456789"), InvalidToken),
        (lambda: mint_token(USER_A) + "x", InvalidToken),
        (lambda: jwt.encode({"sub": USER_A}, JWT_KEY, algorithm="HS256"), InvalidToken),
        (lambda: jwt.encode({"exp": time.time() + 60}, JWT_KEY, algorithm="HS256"), InvalidToken),
        (lambda: jwt.encode({"exp": time.time() + 60}, None, algorithm="none"), InvalidToken),
        (lambda: "not.a.token", InvalidToken),
    ],
)
def test_bad_tokens_are_401(token, expected):
    settings = nhost_settings("http://x/v1")
    with pytest.raises(expected) as caught:
        resolve_nhost_identity(settings, None, token(), None)
    assert isinstance(caught.value, errors.AuthError) and caught.value.status == 401


def test_server_rejects_expired_tokens_too(hasura):
    url, server = hasura
    expired = NhostIdentity(user_id=USER_A, token=mint_token(USER_A, expires_in=-60))
    result = push(url, synthetic_chunks(1), identity=expired)
    assert (result["error_code"], server.request_count) == ("nhost_auth", 1)


def rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public_pem.decode()


def rs256_token(private, user_id: str, kid: str | None = None) -> str:
    claims = {
        "exp": time.time() + 60,
        "https://hasura.io/jwt/claims": {"x-hasura-user-id": user_id},
    }
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid} if kid else None)


def test_rs256_pem_secret_verifies():
    private, public_pem = rsa_pair()
    settings = nhost_settings(
        "http://x/v1", nhost_jwt_secret=json.dumps({"type": "RS256", "key": public_pem})
    )
    assert (
        resolve_nhost_identity(settings, None, rs256_token(private, USER_A), None).user_id == USER_A
    )
    hs_forgery = jwt.encode({"exp": time.time() + 60}, "x" * 40, algorithm="HS256")
    with pytest.raises(InvalidToken):
        resolve_nhost_identity(settings, None, hs_forgery, None)


def test_jwk_url_secret_verifies():
    private, _ = rsa_pair()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        secret = json.dumps({"jwk_url": f"http://127.0.0.1:{httpd.server_address[1]}/jwks"})
        settings = nhost_settings("http://x/v1", nhost_jwt_secret=secret)
        token = rs256_token(private, USER_B, kid="k1")
        assert resolve_nhost_identity(settings, None, token, USER_B).user_id == USER_B
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------- configuration and health


def test_nhost_status(hasura):
    url, _ = hasura
    assert nhost_status(nhost_settings(None)) == "not_configured"
    no_creds = nhost_settings(url, nhost_admin_secret=None, nhost_jwt_secret=None)
    assert nhost_status(no_creds) == "not_configured"
    assert nhost_status(nhost_settings(url)) == "configured"
    assert nhost_status(nhost_settings(url, nhost_admin_secret=None)) == "configured"
    with requests.Session() as session:
        assert nhost_status(nhost_settings(url), session=session) == "configured"
    assert nhost_status(nhost_settings(closed_port_url())) == "unreachable"
    assert nhost_status(nhost_settings(url, nhost_admin_secret="wrong")) == "unreachable"


def test_config_problems_name_the_setting_never_the_secret():
    assert config_problems(nhost_settings("https://x.nhost.run/v1")) == []
    assert (
        config_problems(nhost_settings(None, nhost_admin_secret=None, nhost_jwt_secret=None)) == []
    )
    no_creds = config_problems(
        nhost_settings("https://x/v1", nhost_admin_secret=None, nhost_jwt_secret=None)
    )
    assert any("neither NHOST_ADMIN_SECRET nor NHOST_JWT_SECRET" in p for p in no_creds)
    bad_json = "{'type': 'HS256', 'key': 'sekrit-value-0123456789abcdef0123'}"
    problems = config_problems(nhost_settings("https://x/v1", nhost_jwt_secret=bad_json))
    assert problems and not any("sekrit" in p for p in problems)
    short = json.dumps({"type": "RS256", "key": "sekrit-not-a-pem"})
    assert any(
        "RS256" in p
        for p in config_problems(nhost_settings("https://x/v1", nhost_jwt_secret=short))
    )
    half = nhost_settings(None, nhost_subdomain="abc", nhost_documents_table="bad name")
    assert len(config_problems(half)) == 3  # region missing, secrets without URL, table name


def test_retry_policy_stays_within_the_budget():
    for total in (1.0, 10.0, 60.0, 300.0):
        policy = retry_policy(total)
        connect, read = nhost_client.request_timeouts(total)
        attempts = policy.total + 1
        wait = max(policy.backoff_max, policy.retry_after_max)
        assert attempts * (connect + read) + (attempts - 1) * wait <= total
        assert "POST" in policy.allowed_methods and policy.respect_retry_after_header
        assert {429, 500, 502, 503, 504} <= set(policy.status_forcelist)
    assert retry_policy(60.0).total >= 2


def test_no_secret_in_results_or_logs(hasura, caplog):
    url, server = hasura
    caplog.set_level(logging.DEBUG)
    token = mint_token(USER_A)
    results = [
        push(url, synthetic_chunks(2)),
        push(url, synthetic_chunks(2), identity=NhostIdentity(user_id=USER_A, token=token)),
        push(url, synthetic_chunks(2), nhost_admin_secret=ADMIN_SECRET + "-wrong"),
        push(url, synthetic_chunks(2), nhost_documents_table="nope"),
    ]
    server.fail_next(5, status=500)
    results.append(push(url, synthetic_chunks(2)))
    assert [r["status"] for r in results] == ["stored", "stored", "failed", "failed", "failed"]
    assert results[2]["error_code"] == "nhost_auth"
    text = json.dumps(results) + caplog.text + repr(NhostIdentity(USER_A, token))
    assert ADMIN_SECRET not in text and token not in text and JWT_KEY not in text
