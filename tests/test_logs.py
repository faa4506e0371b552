"""Logs: JSON lines with request and job ids, security events, and no secrets or document text."""

from __future__ import annotations

import io
import json
import logging
import re
import time

import pytest
import requests

import logs
import metrics
from api import create_app
from config import load_settings
from tests.conftest import corpus_entry
from tests.servers import GunicornServer, wait_until

PASSWORD = "openpassword"
ENCRYPTED = "encrypted/libreoffice-writer-password.pdf"


def json_lines(text: str) -> list[dict]:
    """Return every JSON line of captured output (other lines are ignored)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def events(lines: list[dict], name: str) -> list[dict]:
    """Return the lines of one event."""
    return [line for line in lines if line.get("event") == name]


@pytest.fixture
def client(tmp_path):
    """A test client on the memory store, logging JSON to stdout."""
    settings = load_settings(redis_url=None, upload_dir=str(tmp_path), log_format="json")
    app = create_app(settings)
    yield app.test_client()
    app.extensions["pdfx"].jobs.shutdown()


class TestRequestId:
    """X-Request-ID is taken when safe, made otherwise, and echoed back."""

    def test_safe_incoming_id_is_echoed(self, client):
        response = client.get("/health", headers={"X-Request-ID": "abc-123.def_4"})
        assert response.headers["X-Request-ID"] == "abc-123.def_4"

    @pytest.mark.parametrize("bad", ["has space", "x" * 129, "tab\there", "{json}", 'quote"d'])
    def test_unsafe_incoming_id_is_replaced(self, client, bad):
        response = client.get("/health", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])

    def test_id_is_made_when_absent_and_differs_per_request(self, client):
        first = client.get("/").headers["X-Request-ID"]
        second = client.get("/").headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second

    def test_error_answers_carry_it_too(self, client):
        response = client.get("/job/nope", headers={"X-Request-ID": "req-404"})
        assert response.status_code == 404
        assert response.headers["X-Request-ID"] == "req-404"


class TestRequestLines:
    """Each request is one JSON line with its id, route, status and duration."""

    def test_request_line_fields(self, client, capsys):
        client.get("/job/abc", headers={"X-Request-ID": "req-1"})
        (line,) = events(json_lines(capsys.readouterr().out), "request")
        assert line["request_id"] == "req-1"
        assert line["route"] == "/job/<job_id>"
        assert line["job_id"] == "abc"
        assert line["status"] == 404 and line["error_code"] == "job_not_found"
        assert line["level"] == "INFO" and line["duration_ms"] >= 0
        assert "time" in line and line["logger"] == "api"


class TestJobLines:
    """A job's lines carry its job_id, and the submit line joins it to the request id."""

    def test_job_lifecycle_is_logged_without_password_or_text(self, client, corpus, capsys):
        with (corpus / ENCRYPTED).open("rb") as handle:
            response = client.post(
                "/extract",
                data={"file": (handle, "secret.pdf"), "password": PASSWORD},
                headers={"X-Request-ID": "req-job"},
            )
        assert response.status_code == 200, response.get_json()
        job_id = response.get_json()["job_id"]
        out = capsys.readouterr().out
        lines = json_lines(out)
        (submitted,) = events(lines, "job_submitted")
        assert submitted["request_id"] == "req-job" and submitted["job_id"] == job_id
        (finished,) = events(lines, "job_finished")
        assert finished["job_id"] == job_id and finished["status"] == "completed"
        stages = [line["stage"] for line in events(lines, "job_stage")]
        assert stages[0] == "reading" and stages[-1] == "done"
        assert all(line["job_id"] == job_id for line in events(lines, "job_stage"))
        assert PASSWORD not in out
        first_words = corpus_entry(ENCRYPTED)["pypdfium2"]["first_words"][:40]
        assert first_words[:20] not in out


class TestSecurityEvents:
    """Refusals are WARNING lines with their own event names, and are counted."""

    def test_rejected_upload(self, client, capsys):
        before = metrics.SECURITY_EVENTS.labels("upload_rejected")._value.get()
        response = client.post(
            "/extract/async", data={"file": (io.BytesIO(b"MZ" + b"\0" * 200), "evil.pdf")}
        )
        assert response.status_code == 400
        (line,) = events(json_lines(capsys.readouterr().out), "upload_rejected")
        assert line["level"] == "WARNING" and line["logger"] == "security"
        assert line["security"] is True
        assert line["error_code"] == response.get_json()["error_code"]
        assert line["route"] == "/extract/async" and line["request_id"]
        after = metrics.SECURITY_EVENTS.labels("upload_rejected")._value.get()
        assert after == before + 1

    @pytest.mark.parametrize(
        ("name", "fields", "code"),
        [
            ("image-only/bitmap-mmr.pdf", {}, "no_text_layer"),
            (ENCRYPTED, {}, "password_required"),
            (ENCRYPTED, {"password": "wrong"}, "wrong_password"),
        ],
    )
    def test_an_ordinary_failed_extraction_is_no_security_event(
        self, client, corpus, capsys, name, fields, code
    ):
        before = metrics.SECURITY_EVENTS.labels("upload_rejected")._value.get()
        with (corpus / name).open("rb") as handle:
            response = client.post("/extract", data={**fields, "file": (handle, "doc.pdf")})
        assert response.status_code == 422 and response.get_json()["error_code"] == code
        lines = json_lines(capsys.readouterr().out)
        assert not [line for line in lines if line.get("security")]
        (request_line,) = events(lines, "request")
        assert request_line["error_code"] == code and request_line["status"] == 422
        assert metrics.SECURITY_EVENTS.labels("upload_rejected")._value.get() == before

    def test_rate_limited_request(self, tmp_path, capsys):
        settings = load_settings(
            redis_url=None, upload_dir=str(tmp_path), ratelimit_extract_async="1 per minute"
        )
        client = create_app(settings).test_client()
        before = metrics.RATE_LIMITED.labels("/extract/async")._value.get()
        statuses = [
            client.post("/extract/async", data={"file": (io.BytesIO(b"x" * 200), "a.pdf")})
            for _ in range(2)
        ]
        assert [r.status_code for r in statuses] == [400, 429]
        (line,) = events(json_lines(capsys.readouterr().out), "rate_limited")
        assert line["level"] == "WARNING" and line["route"] == "/extract/async"
        assert line["request_id"] == statuses[1].headers["X-Request-ID"]
        assert metrics.RATE_LIMITED.labels("/extract/async")._value.get() == before + 1

    def test_helper_redacts_secrets_and_text(self, capsys):
        logs.configure_logging(load_settings(log_format="json"))
        logs.security_event(
            "malware_detected",
            password="p",
            nhost_admin_secret="s",
            Authorization="Bearer t",
            text="document words",
            signature="Eicar-Test-Signature",
            filename="a.pdf",
        )
        out = capsys.readouterr().out
        (line,) = json_lines(out)
        assert line["event"] == "malware_detected" and line["level"] == "WARNING"
        for key in ("password", "nhost_admin_secret", "Authorization", "text"):
            assert line[key] == logs.REDACTED
        assert line["signature"] == "Eicar-Test-Signature" and line["filename_"] == "a.pdf"
        assert "document words" not in out and "Bearer t" not in out


class TestFormatsAndLevels:
    """LOG_FORMAT=text gives readable lines; LOG_LEVEL filters."""

    def test_text_format(self, capsys):
        logs.configure_logging(load_settings(log_format="text"))
        logs.bind(request_id="r-text")
        logs.event(logging.getLogger("t"), "thing_done", count=3)
        logs.clear()
        out = capsys.readouterr().out.strip()
        assert not out.startswith("{")
        assert re.search(r" INFO t thing_done request_id=r-text count=3$", out)

    def test_level(self, capsys):
        logs.configure_logging(load_settings(log_level="WARNING"))
        logging.getLogger("t").info("hidden")
        logging.getLogger("t").warning("shown")
        out = capsys.readouterr().out
        assert "hidden" not in out and "shown" in out
        logs.configure_logging(load_settings())

    def test_bad_level_is_refused(self):
        with pytest.raises(ValueError):
            load_settings(log_level="LOUD")


@pytest.mark.e2e
def test_gunicorn_writes_json_lines(redis_url, corpus, tmp_path):
    """Under gunicorn, the app's and gunicorn's own lines are JSON; a job's lines have its id."""
    env = {
        "REDIS_URL": redis_url,
        "RATELIMIT_ENABLED": "false",
        "REDIS_KEY_PREFIX": f"pdfx-logs-{int(time.time() * 1000)}",
        "UPLOAD_DIR": str(tmp_path),
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    with GunicornServer(env, tmp_path / "gunicorn.log", workers=2) as server:
        with (corpus / "clean/pdflatex-4-pages.pdf").open("rb") as handle:
            response = requests.post(
                f"{server.url}/extract/async",
                files={"file": ("a.pdf", handle)},
                headers={"X-Request-ID": "gunicorn-req"},
                timeout=30,
            )
        assert response.headers["X-Request-ID"] == "gunicorn-req"
        job_id = response.json()["job_id"]
        assert wait_until(lambda: '"job_finished"' in server.log(), 60)
        log = server.log()
    lines = json_lines(log)
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    (submitted,) = events(lines, "job_submitted")
    assert submitted["request_id"] == "gunicorn-req" and submitted["job_id"] == job_id
    assert events(lines, "job_finished")[0]["job_id"] == job_id
