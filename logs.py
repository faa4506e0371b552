"""Structured logs: one JSON line (or a text line) per event on stdout, with request and job ids.

Every line carries ``request_id`` and ``job_id`` from context variables, so a job's lines and
the request that queued it can be joined. Security events go through ``security_event`` with
their own event names at WARNING. Nothing here logs a password, token, secret or document
text: ``safe_fields`` drops such fields before they reach a line.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

import metrics
from config import Settings

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Substrings of field names that may hold a credential, and names that hold document text.
_SECRET_PARTS = ("password", "passwd", "token", "secret", "authorization", "cookie", "api_key")
_TEXT_FIELDS = frozenset({"text", "content", "data", "chunks", "page_text"})
REDACTED = "[redacted]"
# Refusals logged under their own event name rather than the generic upload_rejected.
NAMED_SECURITY_CODES = frozenset({"malware_detected", "pdf_feature_rejected", "dangerous_content"})
# What an honest document gives as often as a hostile one: a failed extraction, no refusal.
ORDINARY_OUTCOMES = frozenset(
    {"password_required", "wrong_password", "no_text_layer", "no_pages", "invalid_pages"}
)
# LogRecord attributes an `extra` key must not overwrite (logging raises if it does).
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_job_id: ContextVar[str | None] = ContextVar("job_id", default=None)

security_log = logging.getLogger("security")


def new_request_id(incoming: str | None = None) -> str:
    """Return the caller's X-Request-ID when it is a safe token, else a fresh one."""
    if incoming and _REQUEST_ID_OK.match(incoming):
        return incoming
    return uuid.uuid4().hex


def bind(*, request_id: str | None = None, job_id: str | None = None) -> None:
    """Set the ids every following log line of this thread (or context) carries."""
    if request_id is not None:
        _request_id.set(request_id)
    if job_id is not None:
        _job_id.set(job_id)


def clear() -> None:
    """Forget this context's ids (end of a request or job)."""
    _request_id.set(None)
    _job_id.set(None)


def current_request_id() -> str | None:
    """Return the request id bound to this context."""
    return _request_id.get()


def safe_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Return fields fit for a log line: secrets and document text redacted, keys made safe."""
    safe = {}
    for key, value in fields.items():
        lowered = key.lower()
        if lowered in _TEXT_FIELDS or any(part in lowered for part in _SECRET_PARTS):
            value = REDACTED
        safe[f"{key}_" if key in _RESERVED else key] = value
    return safe


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one named event with structured fields."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"event": name, **safe_fields(fields)})


def security_event(name: str, **fields: Any) -> None:
    """Log a security event (rejected upload, rate limit, malware...) at WARNING and count it."""
    event(security_log, name, logging.WARNING, security=True, **fields)
    metrics.record_security_event(name)


class ContextFilter(logging.Filter):
    """Stamp request_id and job_id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the request and job ids to the record; never drop it."""
        # An explicit `extra` id (e.g. a job polled by a request) wins over the context's.
        record.request_id = getattr(record, "request_id", None) or _request_id.get()
        record.job_id = getattr(record, "job_id", None) or _job_id.get()
        return True


class StdoutHandler(logging.StreamHandler):
    """Write to whatever sys.stdout is when a record is emitted (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Emit the record to the current stdout."""
        self.stream = sys.stdout
        super().emit(record)


class TextFormatter(logging.Formatter):
    """A readable line for local runs: time, level, logger, ids, message, then key=value extras."""

    _standard = _RESERVED | {"request_id", "job_id", "event"}

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, appending its ids and extras."""
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in self._standard}
        ids = {
            "request_id": record.__dict__.get("request_id"),
            "job_id": record.__dict__.get("job_id"),
        }
        pairs = [f"{k}={v}" for k, v in {**ids, **extras}.items() if v is not None]
        return f"{line} {' '.join(pairs)}".rstrip()


def make_formatter(log_format: str) -> logging.Formatter:
    """Return the JSON-lines or text formatter."""
    if log_format == "text":
        return TextFormatter()
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        timestamp="time",
        rename_fields={"levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


def configure_logging(settings: Settings, stream: Any = None) -> logging.Handler:
    """Send every log record to stdout in the configured format and level (idempotent)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_pdfx", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream else StdoutHandler()
    handler._pdfx = True  # type: ignore[attr-defined]
    handler.setFormatter(make_formatter(settings.log_format))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    return handler
