"""Security protections through the HTTP API (Flask test client, real PDFs, real clamd)."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import pdf_factory
import pytest
from hasura_server import JWT_SECRET_SETTING, mint_token
from test_api import make_settings, poll
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from api import create_app

KEY_A, KEY_B = "key-a-0123456789abcdef", "key-b-fedcba9876543210"
USER = "123e4567-e89b-12d3-a456-426614174000"


def post(client, data: bytes, name: str = "doc.pdf", route="/extract/async", headers=None, **f):
    """POST bytes as the multipart 'file' with extra form fields."""
    values: dict = {key: str(value) for key, value in f.items()}
    values["file"] = FileStorage(io.BytesIO(data), name)
    boundary, body = encode_multipart(values)
    return client.post(
        route,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=headers or {},
    )


def text_pdf(text: bytes) -> bytes:
    """Return a one-page PDF whose page shows ``text`` (PDF string syntax escaped)."""
    escaped = text.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    content = b"BT /F1 12 Tf 72 700 Td (" + escaped + b") Tj ET"
    return pdf_factory.document(extra={4: pdf_factory.stream(content)})


@pytest.fixture
def make_app(tmp_path):
    """Build apps with setting overrides; shut their pools down afterwards."""
    apps = []

    def build(**overrides):
        app = create_app(make_settings(tmp_path / "uploads", **overrides))
        (tmp_path / "uploads").mkdir(exist_ok=True)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["pdfx"].jobs.shutdown()


def leftovers(app) -> list[Path]:
    """Return what is left in the app's upload dir."""
    return list(Path(app.extensions["pdfx"].settings.upload_dir).iterdir())


class TestApiKeys:
    """API_KEYS: X-API-Key required (401), /health open, a job visible only to its key."""

    @pytest.fixture
    def client(self, make_app):
        return make_app(api_keys=f"{KEY_A},{KEY_B}").test_client()

    def test_missing_and_wrong_keys_are_401(self, client):
        plain = pdf_factory.plain()
        for headers in ({}, {"X-API-Key": "nope"}, {"X-API-Key": KEY_A[:-1]}):
            response = post(client, plain, headers=headers)
            assert response.status_code == 401, headers
            assert response.get_json()["error_code"] == "unauthorized"
        # Authorization: Bearer is for end users' Nhost tokens, never an API key.
        assert post(client, plain, headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 401
        assert client.get("/job/" + "0" * 32).status_code == 401
        assert client.get("/").status_code == 401

    def test_health_stays_open(self, client):
        assert client.get("/health").status_code == 200

    def test_job_visible_only_to_its_key(self, client):
        response = post(client, pdf_factory.plain(), headers={"X-API-Key": KEY_A})
        assert response.status_code == 202
        job_id = response.get_json()["job_id"]
        mine = client.get(f"/job/{job_id}", headers={"X-API-Key": KEY_A})
        assert mine.status_code == 200 and "owner" not in mine.get_json()
        theirs = client.get(f"/job/{job_id}", headers={"X-API-Key": KEY_B})
        assert theirs.status_code == 404
        assert theirs.get_json()["error_code"] == "job_not_found"
        record = client.application.extensions["pdfx"].store.get(job_id)
        assert KEY_A not in str(record)  # only a hash of the key is stored

    def test_sync_route_works_with_key(self, client):
        response = post(client, pdf_factory.plain(), route="/extract", headers={"X-API-Key": KEY_B})
        assert response.status_code == 200, response.get_json()

    def test_nhost_token_is_a_credential_and_owns_its_jobs(self, make_app):
        settings = {"api_keys": KEY_A, "nhost_jwt_secret": JWT_SECRET_SETTING}
        client = make_app(**settings).test_client()
        alice = {"Authorization": f"Bearer {mint_token(USER)}"}
        bob = {"Authorization": f"Bearer {mint_token(str(uuid.uuid4()))}"}
        response = post(client, pdf_factory.plain(), headers=alice)
        assert response.status_code == 202
        job = f"/job/{response.get_json()['job_id']}"
        assert client.get(job, headers=alice).status_code == 200
        assert client.get(job, headers=bob).status_code == 404
        assert client.get(job, headers={"X-API-Key": KEY_A}).status_code == 404
        forged = {"Authorization": f"Bearer {mint_token(USER, key='not-the-secret' * 3)}"}
        assert client.get(job, headers=forged).status_code == 401

    def test_open_without_keys(self, make_app, caplog):
        client = make_app().test_client()
        assert "API_KEYS is not set" in caplog.text
        assert post(client, pdf_factory.plain()).status_code == 202


class TestFieldChecks:
    """Each bad input field has its own 400 error_code; the stored name is the server's."""

    @pytest.fixture
    def client(self, make_app):
        return make_app(allowed_upload_devices="web,mobile").test_client()

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"user_id": "42"}, "invalid_user_id"),
            ({"user_id": "123e4567e89b12d3a456426614174000"}, "invalid_user_id"),
            ({"upload_device": "api"}, "invalid_upload_device"),  # not in this app's list
            ({"filename": "../../etc/cron.d/x.pdf"}, "invalid_filename"),
            ({"filename": "a\\b.pdf"}, "invalid_filename"),
            ({"filename": "evil%00.pdf"}, "invalid_filename"),
            ({"filename": "invoice\u202efdp.exe"}, "invalid_filename"),
            ({"filename": "x" * 252 + ".pdf"}, "invalid_filename"),
            ({"filename": "invoice.exe.pdf"}, "invalid_file_type"),
            ({"filename": "report.pdf.exe"}, "invalid_file_type"),
        ],
    )
    def test_rejected(self, client, fields, code):
        response = post(client, pdf_factory.plain(), **fields)
        assert response.status_code == 400
        assert response.get_json()["error_code"] == code

    def test_good_fields_are_kept(self, make_app):
        # Only a trusted key may name a user (Nhost section).
        client = make_app(api_keys=KEY_A, trusted_api_keys=KEY_A).test_client()
        response = post(
            client, pdf_factory.plain(), user_id=USER.upper(), upload_device="Mobile",
            filename="Q3 report (final).pdf", headers={"X-API-Key": KEY_A},
        )  # fmt: skip
        assert response.status_code == 202
        job = client.application.extensions["pdfx"].store.get(response.get_json()["job_id"])
        assert job["options"]["user_id"] == USER
        assert job["options"]["upload_device"] == "mobile"
        assert job["filename"] == "Q3 report (final).pdf"

    def test_mime_from_bytes_not_content_type(self, client):
        jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + pdf_factory.plain()
        response = post(client, jpeg)  # the client claims nothing; the name says .pdf
        assert response.get_json()["error_code"] == "invalid_mime_type"

    def test_html_before_pdf_passes_libmagic_but_not_byte_zero(self, client):
        # libmagic calls this application/pdf: the %PDF- at byte 0 check is what stops it.
        response = post(client, b"<html><body>hi</body></html>\n" + pdf_factory.plain())
        assert response.get_json()["error_code"] == "invalid_file_type"


class TestRiskScan:
    """data.security carries both scans' indicators and the risk; the policy refuses features."""

    @pytest.fixture
    def client(self, make_app):
        return make_app().test_client()

    @pytest.mark.parametrize(
        ("builder", "structure_key"),
        [
            (pdf_factory.page_aa_javascript, "javascript"),
            (pdf_factory.launch_link, "launch"),
            (pdf_factory.javascript_in_object_stream, "javascript"),
            (pdf_factory.obfuscated_javascript, "javascript"),
            (pdf_factory.embedded_file, "embedded_file"),
        ],
    )
    def test_hostile_pdfs_are_high(self, client, builder, structure_key):
        job = poll(client, post(client, builder()).get_json()["job_id"])
        assert job["status"] == "completed", job
        security = job["data"]["security"]
        assert security["risk"] == "high"
        found = {(i["key"], i["source"]) for i in security["indicators"]}
        assert (structure_key, "structure") in found
        assert security["mime"] == "application/pdf" and len(security["sha256"]) == 64
        assert security["antivirus"]["status"] == "skipped"  # clamd not configured here

    def test_obfuscation_is_reported(self, client):
        job = poll(client, post(client, pdf_factory.obfuscated_javascript()).get_json()["job_id"])
        byte_hits = [i for i in job["data"]["security"]["indicators"] if i["source"] == "bytes"]
        expected = {"key": "/JavaScript", "count": 1, "obfuscated": True, "source": "bytes"}
        assert expected in byte_hits

    def test_clean_corpus_file_is_low(self, client, corpus):
        data = (corpus / "clean/pdflatex-4-pages.pdf").read_bytes()
        job = poll(client, post(client, data).get_json()["job_id"])
        assert job["data"]["security"]["risk"] == "low"

    @pytest.mark.parametrize(
        ("builder", "feature"),
        [(pdf_factory.page_aa_javascript, "javascript"), (pdf_factory.launch_link, "launch")],
    )
    def test_reject_features(self, make_app, builder, feature):
        client = make_app(pdf_reject_features="javascript,launch,embedded_file").test_client()
        job = poll(client, post(client, builder()).get_json()["job_id"])
        assert job["status"] == "failed"
        assert job["error_code"] == "pdf_feature_rejected"
        assert feature in job["error"]
        sync = post(client, builder(), route="/extract")
        assert sync.status_code == 422 and sync.get_json()["error_code"] == "pdf_feature_rejected"
        assert poll(client, post(client, pdf_factory.plain()).get_json()["job_id"])["status"] == (
            "completed"
        )

    def test_unknown_feature_is_refused_at_start(self, make_app):
        with pytest.raises(ValueError, match="unknown features"):
            make_app(pdf_reject_features="javascript,telepathy")


class TestDangerousContent:
    """DANGEROUS_CONTENT=off|flag|reject on the sanitized text."""

    ATTACK = b"Name: admin' OR '1'='1 -- and <script>alert(1)</script>"

    def _run(self, make_app, mode):
        client = make_app(dangerous_content=mode).test_client()
        return poll(client, post(client, text_pdf(self.ATTACK)).get_json()["job_id"])

    def test_flag(self, make_app):
        job = self._run(make_app, "flag")
        assert job["status"] == "completed"
        warnings = [w for w in job["data"]["warnings"] if "looks like" in w]
        assert len(warnings) == 2 and all("page 1" in w for w in warnings)
        assert all("<script" not in w for w in warnings)

    def test_reject(self, make_app):
        job = self._run(make_app, "reject")
        assert job["status"] == "failed" and job["error_code"] == "dangerous_content"

    def test_off(self, make_app):
        job = self._run(make_app, "off")
        assert not [w for w in job["data"]["warnings"] if "looks like" in w]

    def test_ordinary_english_is_not_flagged(self, make_app):
        client = make_app(dangerous_content="reject").test_client()
        text = b"Please select the items from the list, then drop the table from the schedule."
        job = poll(client, post(client, text_pdf(text)).get_json()["job_id"])
        assert job["status"] == "completed", job


class TestAntivirus:
    """Real clamd: EICAR refused and deleted at once; fail modes when clamd is down."""

    def test_eicar_in_pdf_is_refused_and_deleted(self, make_app, clamd):
        app = make_app(clamav_socket=clamd.socket_path)
        response = post(app.test_client(), pdf_factory.eicar_pdf())
        assert response.status_code == 422
        body = response.get_json()
        assert body["error_code"] == "malware_detected"
        assert body["signature"] == "EicarTest.UNOFFICIAL"
        assert "job_id" not in body
        assert leftovers(app) == []  # deleted before the answer, no job queued

    def test_clean_pdf_passes(self, make_app, clamd):
        app = make_app(clamav_host=clamd.host, clamav_port=clamd.port)
        client = app.test_client()
        job = poll(client, post(client, pdf_factory.plain()).get_json()["job_id"])
        assert job["data"]["security"]["antivirus"] == {
            "status": "clean", "signature": None, "engine": "clamav",
        }  # fmt: skip

    def test_down_and_closed_is_503(self, make_app, tmp_path):
        app = make_app(clamav_socket=str(tmp_path / "no-clamd.sock"), clamav_fail_mode="closed")
        response = post(app.test_client(), pdf_factory.plain())
        assert response.status_code == 503
        assert response.get_json()["error_code"] == "antivirus_unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert leftovers(app) == []

    def test_down_and_open_is_accepted_unscanned(self, make_app, tmp_path):
        app = make_app(clamav_socket=str(tmp_path / "no-clamd.sock"), clamav_fail_mode="open")
        client = app.test_client()
        response = post(client, pdf_factory.plain())
        assert response.status_code == 202
        job = poll(client, response.get_json()["job_id"])
        assert job["data"]["security"]["antivirus"]["status"] == "skipped"


class TestHeaders:
    """Security headers on every response; CORS only for CORS_ORIGINS."""

    def test_security_headers_everywhere(self, make_app):
        client = make_app(api_keys=KEY_A).test_client()
        responses = [
            client.get("/health"),
            client.get("/"),  # 401
            client.get("/nope", headers={"X-API-Key": KEY_A}),  # 404
            post(client, b"x" * 200, headers={"X-API-Key": KEY_A}),  # 400
            post(client, pdf_factory.plain(), headers={"X-API-Key": KEY_A}),  # 202
        ]
        assert [r.status_code for r in responses] == [200, 401, 404, 400, 202]
        for response in responses:
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.is_json

    def test_cors_off_by_default(self, make_app):
        client = make_app().test_client()
        response = client.get("/health", headers={"Origin": "https://app.example"})
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_cors_for_listed_origins_only(self, make_app):
        client = make_app(cors_origins="https://app.example", api_keys=KEY_A).test_client()
        allowed = client.get("/health", headers={"Origin": "https://app.example"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
        other = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
        # A browser's preflight carries no key: it must still be answered.
        preflight = client.options(
            "/extract/async",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert "X-API-Key" in preflight.headers["Access-Control-Allow-Headers"]


class TestTempDirs:
    """Per-job temp dirs are 0700 and gone after success, failure, refusal, timeout, cancel."""

    def test_mode_0700_while_the_job_runs(self, make_app, corpus):
        app = make_app(extract_workers=1)
        client = app.test_client()
        data = (corpus / "clean/freeculture.pdf").read_bytes()
        job_id = post(client, data).get_json()["job_id"]
        dirs = leftovers(app)
        assert len(dirs) == 1 and (dirs[0].stat().st_mode & 0o777) == 0o700
        assert [p.name for p in dirs[0].iterdir()] == ["upload.pdf"]  # server-made name
        poll(client, job_id)

    def test_removed_after_success_and_failure(self, make_app, corpus):
        app = make_app()
        client = app.test_client()
        ok = post(client, (corpus / "clean/pdflatex-4-pages.pdf").read_bytes())
        bad = post(client, b"%PDF-1.4\n" + b"garbage " * 40)
        assert poll(client, ok.get_json()["job_id"])["status"] == "completed"
        assert poll(client, bad.get_json()["job_id"])["status"] == "failed"
        assert _eventually_empty(app)

    def test_removed_after_sync_timeout(self, make_app, corpus):
        # The parse timeout belongs to the isolation work; the sync route's timeout exists.
        app = make_app(sync_timeout_s=0.01)
        client = app.test_client()
        response = post(client, (corpus / "clean/freeculture.pdf").read_bytes(), route="/extract")
        assert response.status_code == 504
        assert poll(client, response.get_json()["job_id"])["status"] == "completed"
        assert _eventually_empty(app)

    def test_removed_after_cancel(self, make_app, corpus):
        # Cancelling queued jobs: the pool shuts down with cancel_futures (worker exit).
        app = make_app(extract_workers=1)
        client = app.test_client()
        data = (corpus / "clean/freeculture.pdf").read_bytes()
        for _ in range(3):
            assert post(client, data).status_code == 202
        assert len(leftovers(app)) == 3
        app.extensions["pdfx"].jobs.shutdown(wait=False)
        assert _eventually_empty(app)


def _eventually_empty(app, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not leftovers(app):
            return True
        time.sleep(0.05)
    return False


class TestByteScanWithTheJob:
    """The byte scan runs in the job, not in the upload's answer; a re-run keeps one."""

    def test_job_record_screening_has_no_byte_scan_but_the_result_does(self, make_app):
        app = make_app()
        client = app.test_client()
        job_id = post(client, pdf_factory.obfuscated_javascript()).get_json()["job_id"]
        job = poll(client, job_id)
        assert "byte_scan" not in app.extensions["pdfx"].store.get(job_id)["screening"]
        assert any(i["source"] == "bytes" for i in job["data"]["security"]["indicators"])

    def test_with_byte_scan_scans_once(self, tmp_path):
        from screening import Screener

        path = pdf_factory.save(tmp_path, "doc.pdf", pdf_factory.obfuscated_javascript())
        screener = Screener(make_settings(tmp_path))
        scanned = screener.with_byte_scan({"sha256": "s"}, path)
        assert scanned["byte_scan"]["names"]["/JavaScript"]["obfuscated"] == 1
        kept = {"sha256": "s", "byte_scan": {"kept": True}}
        assert screener.with_byte_scan(kept, path) is kept
        gone = screener.with_byte_scan({"sha256": "s"}, tmp_path / "missing.pdf")
        assert gone["byte_scan"] is None  # reported as unknown risk, never low
