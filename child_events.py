"""Check the parse child's events against the protocol (see ``extraction``'s docstring).

The child's output is untrusted: every event is validated here and returned as a clean copy;
anything unexpected raises ``ParserCrash``.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import errors

log = logging.getLogger(__name__)

MAX_INDICATORS = 100
MAX_WARNINGS = 10_000
ENGINES = frozenset({"pdfium", "pdfminer", "pypdf"})
METADATA_STRINGS = (
    "title", "author", "subject", "creator", "producer",
    "creation_date", "modification_date", "pdf_version",
)  # fmt: skip


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def crash(reason: str) -> errors.ParserCrash:
    """Log why the child's output was rejected and return the ParserCrash to raise."""
    log.debug("parse child output rejected: %s", reason)
    return errors.ParserCrash()


def validate_metadata(metadata: Any) -> dict[str, Any]:
    """Return the checked metadata of an ``opened`` event."""
    if not isinstance(metadata, dict):
        raise crash("metadata is not an object")
    clean = {key: metadata.get(key) for key in METADATA_STRINGS}
    if not all(value is None or isinstance(value, str) for value in clean.values()):
        raise crash("a metadata field is not a string")
    for key in ("encrypted", "title_inferred"):
        if not isinstance(metadata.get(key), bool):
            raise crash(f"metadata {key} is not a boolean")
        clean[key] = metadata[key]
    if not _is_int(metadata.get("num_pages")):
        raise crash("metadata num_pages is not an integer")
    return {**clean, "num_pages": metadata["num_pages"]}


def validate_opened(event: dict[str, Any]) -> dict[str, Any]:
    """Return the checked ``opened`` event."""
    total, selected = event.get("pages_total"), event.get("selected")
    if not _is_int(total) or total < 1 or event.get("engine") not in ENGINES:
        raise crash("bad pages_total or engine")
    if not isinstance(selected, list) or not all(_is_int(n) and 1 <= n <= total for n in selected):
        raise crash("bad selected pages")
    if selected != sorted(set(selected)):
        raise crash("selected pages are not sorted and unique")
    return {
        "type": "opened",
        "pages_total": total,
        "selected": selected,
        "metadata": validate_metadata(event.get("metadata")),
        "engine": event["engine"],
    }


def validate_tables(tables: Any) -> list[dict[str, Any]]:
    """Return the checked tables of a ``page`` event."""
    if not isinstance(tables, list):
        raise crash("tables is not a list")
    checked = []
    for table in tables:
        rows = table.get("rows") if isinstance(table, dict) else None
        if not _is_int(table.get("table_index") if rows is not None else None):
            raise crash("bad table")
        if not isinstance(rows, list) or not all(_is_row(row) for row in rows):
            raise crash("bad table rows")
        checked.append({"table_index": table["table_index"], "rows": rows})
    return checked


def _is_row(row: Any) -> bool:
    return isinstance(row, list) and all(cell is None or isinstance(cell, str) for cell in row)


def validate_page(event: dict[str, Any]) -> dict[str, Any]:
    """Return the checked ``page`` event (page_number is checked by the caller)."""
    if not isinstance(event.get("text"), str) or event.get("engine") not in ENGINES:
        raise crash("bad page text or engine")
    page = {
        "type": "page",
        "page_number": event["page_number"],
        "text": event["text"],
        "engine": event["engine"],
    }
    if "tables" in event:
        page["tables"] = validate_tables(event["tables"])
    return page


def validate_security(event: dict[str, Any]) -> dict[str, Any]:
    """Return the checked ``security`` event: structure indicators from riskscan."""
    indicators = event.get("indicators")
    if not isinstance(indicators, list) or len(indicators) > MAX_INDICATORS:
        raise crash("bad security indicators")
    for item in indicators:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("key"), str)
            and len(item["key"]) <= 64
            and _is_int(item.get("count"))
            and isinstance(item.get("obfuscated"), bool)
            and item.get("source") == "structure"
        ):
            raise crash("bad security indicator")
    fields = ("key", "count", "obfuscated", "source")
    return {"type": "security", "indicators": [{f: i[f] for f in fields} for i in indicators]}


class EventChecker:
    """Check each event against the protocol and the events before it."""

    def __init__(self) -> None:
        self.opened: dict[str, Any] | None = None
        self._remaining: deque[int] = deque()
        self._warnings = 0
        self._metadata_seen = False

    def check(self, event: Any) -> dict[str, Any]:
        """Return a clean copy of one event, or raise ParserCrash."""
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "warning":
            self._warnings += 1
            if self._warnings > MAX_WARNINGS:
                raise crash("too many warnings")
        if kind in ("warning", "error") or (kind == "done" and self.opened is not None):
            return self._check_message(event)
        if kind == "metadata" and self.opened is not None and not self._metadata_seen:
            self._metadata_seen = True
            return {"type": "metadata", "metadata": validate_metadata(event.get("metadata"))}
        if kind == "opened" and self.opened is None:
            self.opened = validate_opened(event)
            self._remaining = deque(self.opened["selected"])
            return self.opened
        if kind == "security" and self.opened is not None:
            return validate_security(event)
        if kind in ("page", "page_failed") and self.opened is not None:
            self._check_page_number(event.get("page_number"))
            if kind == "page":
                return validate_page(event)
            if event.get("code") not in errors.EXTRACTION_ERRORS:
                raise crash("bad page_failed code")
            return {"type": kind, "page_number": event["page_number"], "code": event["code"]}
        raise crash(f"unexpected event type {kind!r}")

    def _check_message(self, event: dict[str, Any]) -> dict[str, Any]:
        fields = {"warning": ("message",), "error": ("code", "message"), "done": ()}
        names = fields[event["type"]]
        if not all(isinstance(event.get(name), str) for name in names):
            raise crash(f"bad {event['type']} event")
        return {"type": event["type"], **{name: event[name] for name in names}}

    def _check_page_number(self, number: Any) -> None:
        # Pages must come in the announced order, each at most once.
        if not self._remaining or number != self._remaining[0]:
            raise crash(f"page {number!r} was not expected next")
        self._remaining.popleft()
