"""Tell a client's server that its job ended: a signed POST, retried, never to private hosts.

Signature (Standard Webhooks style): ``X-Webhook-Signature: v1=<hex>`` where ``<hex>`` is
HMAC-SHA256 with ``WEBHOOK_SECRET`` over ``"<X-Webhook-Timestamp>.<raw body>"``.
``X-Webhook-Id`` is the event id: the same on every retry, so the receiver can de-duplicate.

SSRF guard: the host is resolved and every address must be public unless
``WEBHOOK_ALLOW_PRIVATE=true``; redirects are not followed; and the address a connection
actually reaches is checked again before anything is sent, so a DNS answer that changes
between the check and the connect (rebinding) cannot reach a private host.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from config import Settings
from errors import WebhookRefused

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
RETRY_STATUSES = (429, 500, 502, 503, 504)
PAYLOAD_FIELDS = (
    "job_id", "status", "progress", "stage", "message", "pages_done", "pages_total",
    "filename", "created_at", "updated_at", "expires_at", "error", "error_code",
)  # fmt: skip


def _blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_url(url: str, allow_private: bool) -> str:
    """Return ``url`` if it is http(s) and (unless allowed) resolves only to public addresses."""
    parts = urlsplit(url)
    if len(url) > MAX_URL_LENGTH or parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused()
    if parts.username or parts.password:
        raise WebhookRefused("The webhook_url must not carry credentials.")
    if allow_private:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise WebhookRefused("The webhook_url host does not resolve.") from None
    if not infos or any(_blocked(info[4][0]) for info in infos):
        raise WebhookRefused("The webhook_url resolves to a private or reserved address.")
    return url


def _check_peer(sock: socket.socket | None) -> None:
    if sock is None or _blocked(sock.getpeername()[0]):
        sock and sock.close()
        raise WebhookRefused("The webhook_url reached a private or reserved address.")


class _PublicHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self.sock)


class _PublicHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self.sock)


class _PublicHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PublicHTTPConnection


class _PublicHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PublicHTTPSConnection


class PublicOnlyAdapter(HTTPAdapter):
    """An adapter whose connections refuse to talk to a private or reserved peer."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager with connections that check their peer address."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _PublicHTTPPool,
            "https": _PublicHTTPSPool,
        }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def make_session(settings: Settings) -> requests.Session:
    """Return a session that retries with backoff on 429, 5xx and network errors."""
    retry = Retry(
        total=settings.webhook_retries,
        connect=settings.webhook_retries,
        read=settings.webhook_retries,
        status=settings.webhook_retries,
        backoff_factor=settings.webhook_backoff_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,
        redirect=0,
    )
    session = requests.Session()
    adapter_class = HTTPAdapter if settings.webhook_allow_private else PublicOnlyAdapter
    adapter = adapter_class(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def payload(record: dict[str, Any], event_id: str) -> dict[str, Any]:
    """Return the webhook body: the job's final state (without the result data)."""
    job = {name: record.get(name) for name in PAYLOAD_FIELDS if name in record}
    job["status_url"] = f"/job/{record['job_id']}"
    return {"event_id": event_id, "event": f"job.{record['status']}", "job": job}


def deliver(
    url: str, record: dict[str, Any], settings: Settings, session: requests.Session
) -> dict[str, Any]:
    """POST the job's final state to ``url``; return the delivery outcome to store on the job."""
    event_id = uuid.uuid4().hex
    outcome: dict[str, Any] = {"event_id": event_id, "delivered": False}
    if not settings.webhook_secret:
        return {**outcome, "error": "WEBHOOK_SECRET is not set; webhooks are not sent."}
    try:
        check_url(url, settings.webhook_allow_private)
    except WebhookRefused as refused:
        return {**outcome, "error": refused.message}
    body = json.dumps(payload(record, event_id), separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Id": event_id,
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": sign(settings.webhook_secret, timestamp, body),
    }
    try:
        response = session.post(
            url, data=body, headers=headers, timeout=settings.webhook_timeout_s,
            allow_redirects=False,
        )  # fmt: skip
    except WebhookRefused as refused:
        return {**outcome, "error": refused.message}
    except requests.RequestException as exc:
        log.warning("webhook for job %s failed: %s", record["job_id"], type(exc).__name__)
        return {**outcome, "error": f"delivery failed: {type(exc).__name__}"}
    attempts = len(response.raw.retries.history) + 1 if response.raw.retries else 1
    delivered = 200 <= response.status_code < 300
    return {**outcome, "delivered": delivered, "status_code": response.status_code,
            "attempts": attempts}  # fmt: skip


class Notifier:
    """Send webhooks on a small thread pool and record each outcome on its job."""

    def __init__(self, settings: Settings, store: Any) -> None:
        self.settings = settings
        self.store = store
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="webhook")
        self._session: requests.Session | None = None

    def send(self, record: dict[str, Any], url: str | None) -> Future | None:
        """Queue the delivery of a terminal job's state to ``url`` (no-op without one)."""
        if not url:
            return None
        return self._pool.submit(self._deliver, record, url)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the pool (pending deliveries still run unless wait is False)."""
        self._pool.shutdown(wait=wait)

    def _deliver(self, record: dict[str, Any], url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = make_session(self.settings)
        outcome = deliver(url, record, self.settings, self._session)
        log.info("webhook for job %s: %s", record["job_id"], outcome)
        try:
            self.store.update(record["job_id"], webhook=outcome)
        except Exception as exc:  # the job may be purged or the store down: the outcome is logged
            log.warning("webhook outcome for job %s not saved: %s", record["job_id"], exc)
        return outcome
