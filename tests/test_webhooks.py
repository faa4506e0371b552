"""Webhooks: signed, retried with backoff on 5xx/429, and never sent to private addresses.

A real HTTP receiver on loopback answers with a scripted list of statuses; loopback is a
private address, so tests that deliver to it set WEBHOOK_ALLOW_PRIVATE=true, and the SSRF
tests check that without it nothing reaches the receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import webhooks
from api import create_app
from config import Settings
from errors import WebhookRefused
from tests.servers import wait_until
from tests.test_api import make_settings, poll, upload

SECRET = "test-webhook-secret"
SMALL = "clean/pdflatex-4-pages.pdf"


class Receiver:
    """A loopback HTTP server that answers POSTs with scripted statuses and keeps them."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(*statuses: int) -> Receiver:
        made.append(Receiver(list(statuses)))
        return made[-1]

    yield make
    for item in made:
        item.close()


def hook_settings(**overrides) -> Settings:
    values = {"webhook_secret": SECRET, "webhook_allow_private": True, "webhook_backoff_s": 0.01}
    return Settings(**{**values, **overrides})


RECORD = {"job_id": "abc123", "status": "completed", "progress": 100, "stage": "done"}


def verify(request: dict) -> dict:
    """Check a received request's signature the way a client would; return its JSON."""
    headers = request["headers"]
    signed = headers["X-Webhook-Timestamp"].encode() + b"." + request["body"]
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Webhook-Signature"], "v1=" + expected)
    return json.loads(request["body"])


class TestDelivery:
    """A delivery is signed, carries an event id, and is retried until it succeeds."""

    def test_signed_payload(self, receiver):
        hook = receiver(200)
        session = webhooks.make_session(hook_settings())
        outcome = webhooks.deliver(hook.url, RECORD, hook_settings(), session)
        assert outcome["delivered"] and outcome["attempts"] == 1
        body = verify(hook.requests[0])
        assert body["event"] == "job.completed" and body["job"]["job_id"] == "abc123"
        assert body["event_id"] == hook.requests[0]["headers"]["X-Webhook-Id"]
        assert "data" not in body["job"]

    def test_tampered_body_fails_verification(self, receiver):
        hook = receiver(200)
        webhooks.deliver(hook.url, RECORD, hook_settings(), webhooks.make_session(hook_settings()))
        tampered = {**hook.requests[0], "body": hook.requests[0]["body"].replace(b"abc", b"xyz")}
        with pytest.raises(AssertionError):
            verify(tampered)

    def test_retries_5xx_and_429_with_the_same_event_id(self, receiver):
        hook = receiver(503, 429, 500, 200)
        settings = hook_settings()
        outcome = webhooks.deliver(hook.url, RECORD, settings, webhooks.make_session(settings))
        assert outcome["delivered"] and outcome["attempts"] == 4
        ids = {r["headers"]["X-Webhook-Id"] for r in hook.requests}
        assert len(hook.requests) == 4 and ids == {outcome["event_id"]}

    def test_gives_up_after_retries(self, receiver):
        hook = receiver(*[503] * 10)
        settings = hook_settings(webhook_retries=2)
        outcome = webhooks.deliver(hook.url, RECORD, settings, webhooks.make_session(settings))
        assert not outcome["delivered"] and outcome["status_code"] == 503
        assert len(hook.requests) == 3

    def test_network_error_is_recorded(self):
        settings = hook_settings(webhook_retries=1)
        url = "http://127.0.0.1:1/hook"  # nothing listens on port 1
        outcome = webhooks.deliver(url, RECORD, settings, webhooks.make_session(settings))
        assert not outcome["delivered"] and "ConnectionError" in outcome["error"]

    def test_no_secret_no_delivery(self, receiver):
        hook = receiver(200)
        settings = hook_settings(webhook_secret=None)
        outcome = webhooks.deliver(hook.url, RECORD, settings, webhooks.make_session(settings))
        assert not outcome["delivered"] and "WEBHOOK_SECRET" in outcome["error"]
        assert hook.requests == []


class TestSsrfGuard:
    """Only public http(s) addresses, unless WEBHOOK_ALLOW_PRIVATE=true."""

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1/x",
            "http://localhost/x",
            "http://10.1.2.3/x",
            "http://192.168.0.1/x",
            "http://172.16.0.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[fe80::1]/x",
            "http://0.0.0.0/x",
            "http://100.64.0.1/x",
        ],
    )
    def test_private_targets_refused(self, url):
        with pytest.raises(WebhookRefused):
            webhooks.check_url(url, allow_private=False)

    @pytest.mark.parametrize(
        "url", ["ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/", "x"]
    )
    def test_bad_urls_refused_even_when_private_allowed(self, url):
        with pytest.raises(WebhookRefused):
            webhooks.check_url(url, allow_private=True)

    def test_public_address_and_allowed_private_pass(self):
        assert webhooks.check_url("https://93.184.215.14/hook", allow_private=False)
        assert webhooks.check_url("http://127.0.0.1/hook", allow_private=True)

    def test_refused_delivery_sends_nothing(self, receiver):
        hook = receiver(200)
        settings = hook_settings(webhook_allow_private=False)
        outcome = webhooks.deliver(hook.url, RECORD, settings, webhooks.make_session(settings))
        assert not outcome["delivered"] and "private" in outcome["error"]
        assert hook.requests == []

    def test_dns_rebinding_is_caught_at_connect(self, receiver, monkeypatch):
        """A name that resolves public at the check and private at the connect sends nothing."""
        hook = receiver(200)
        port = int(hook.url.rsplit(":", 1)[1].split("/")[0])
        real_getaddrinfo = socket.getaddrinfo
        answers = iter(["93.184.215.14"])  # the first answer is public; later ones are not

        def rebinding_dns(host, *args, **kwargs):
            if host != "rebind.example":
                return real_getaddrinfo(host, *args, **kwargs)
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
        settings = hook_settings(webhook_allow_private=False)
        url = f"http://rebind.example:{port}/hook"
        outcome = webhooks.deliver(url, RECORD, settings, webhooks.make_session(settings))
        assert not outcome["delivered"] and "private" in outcome["error"]
        assert hook.requests == []


class TestJobWebhooks:
    """send_webhook=true posts the final state once the job ends, and records the outcome."""

    def test_completed_job_is_delivered_after_a_failure(self, receiver, corpus, tmp_path):
        hook = receiver(502, 200)
        app = create_app(
            make_settings(
                tmp_path, webhook_secret=SECRET, webhook_allow_private=True, webhook_backoff_s=0.01
            )
        )
        client = app.test_client()
        try:
            response = upload(client, corpus / SMALL, send_webhook="true", webhook_url=hook.url)
            job_id = response.get_json()["job_id"]
            assert poll(client, job_id)["status"] == "completed"
            assert wait_until(lambda: "webhook" in client.get(f"/job/{job_id}").get_json(), 10)
            outcome = client.get(f"/job/{job_id}").get_json()["webhook"]
            assert outcome["delivered"] and outcome["attempts"] == 2
            body = verify(hook.requests[-1])
            assert body["event"] == "job.completed" and body["job"]["job_id"] == job_id
        finally:
            app.extensions["pdfx"].jobs.shutdown()

    def test_cancelled_job_is_delivered(self, receiver, corpus, tmp_path):
        hook = receiver()
        app = create_app(
            make_settings(
                tmp_path, webhook_secret=SECRET, webhook_allow_private=True, webhook_url=hook.url
            )
        )
        client = app.test_client()
        try:
            job_id = upload(
                client, corpus / "clean/freeculture.pdf", include_tables="true", send_webhook="true"
            ).get_json()["job_id"]
            client.delete(f"/job/{job_id}")
            assert wait_until(lambda: hook.requests, 10)
            body = verify(hook.requests[0])
            assert body["event"] == "job.failed" and body["job"]["error_code"] == "cancelled"
        finally:
            app.extensions["pdfx"].jobs.shutdown(wait=False)

    def test_private_webhook_url_refused_at_submit(self, corpus, tmp_path):
        app = create_app(make_settings(tmp_path, webhook_secret=SECRET))
        client = app.test_client()
        try:
            response = upload(
                client, corpus / SMALL, send_webhook="true", webhook_url="http://127.0.0.1:9/h"
            )
            assert response.status_code == 400
            assert response.get_json()["error_code"] == "webhook_url_refused"
            assert list(tmp_path.iterdir()) == []
        finally:
            app.extensions["pdfx"].jobs.shutdown()
