"""Pure text helpers of the parse child: page text cleaning, title inference, PDF dates.

No parser library is imported here; ``parse_child`` applies these to what the engines return.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

METADATA_TEXT_KEYS = {
    "title": "Title",
    "author": "Author",
    "subject": "Subject",
    "creator": "Creator",
    "producer": "Producer",
}
METADATA_DATE_KEYS = {"creation_date": "CreationDate", "modification_date": "ModDate"}
# Longer lines are running headers or body text, not a title.
TITLE_MAX_CHARS = 80
TITLE_SENTENCE_WORDS = 4
TITLE_WRAP_CHARS = 60
TITLE_SCAN_LINES = 12

# pdfium marks a hyphen it removed at a line end with U+FFFE (get_text_range) or \x02.
# Anchored at a word start so the scan stays linear (an unanchored ``\S*`` retries at every
# character of every word: twice the cost on a 352-page book).
_HYPHEN_MARK = re.compile(r"(?<!\S)(\S*)[\ufffe\x02](\S?)")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")
_PDF_DATE = re.compile(
    r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?"
    r"(?:([Zz])|([+-])(\d{2})'?(\d{2})?'?)?"
)
_PAGE_NUMBER_LINE = re.compile(r"^(?:page\s*)?[-–—\s]*[\divxlc]+[-–—\s]*(?:of\s*\d+)?$", re.I)
_DATE_LINE = re.compile(
    r"^(?:\w+,?\s+)?(?:\d{1,2}\.?\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w*"
    r"\.?\s+(?:\d{1,2},?\s+)?\d{4}$|^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$",
    re.I,
)


def build_metadata(get: Any, pdf_version: str | None, encrypted: bool) -> dict[str, Any]:
    """Build the metadata dict from a getter of raw Info values (keys without '/')."""
    metadata: dict[str, Any] = {
        name: clean_string(get(key)) for name, key in METADATA_TEXT_KEYS.items()
    }
    for name, key in METADATA_DATE_KEYS.items():
        raw = clean_string(get(key))
        metadata[name] = None if raw is None else pdf_date_to_iso(raw)
    metadata.update(pdf_version=pdf_version, encrypted=encrypted)
    return metadata


def clean_string(value: Any) -> str | None:
    """Return an Info value as a clean string, or None when empty."""
    if value is None:
        return None
    if hasattr(value, "get_object"):
        value = value.get_object()
    text = _CONTROL_CHARS.sub("", str(value)).strip()
    return text or None


def pdf_date_to_iso(raw: str) -> str:
    """Return a PDF date (D:YYYYMMDDHHmmSSOHH'mm') as ISO-8601, or the raw string."""
    match = _PDF_DATE.match(raw.strip())
    if not match:
        return raw
    year, month, day, hour, minute, second, zulu, sign, off_h, off_m = match.groups()
    tz = None
    if zulu:
        tz = dt.UTC
    elif sign:
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m or 0))
        tz = dt.timezone(-offset if sign == "-" else offset)
    month, day = int(month or 1), int(day or 1)
    clock = [int(v or 0) for v in (hour, minute, second)]
    try:
        return dt.datetime(int(year), month, day, *clock, tzinfo=tz).isoformat()
    except ValueError:
        return raw


def infer_title(first_page_text: str) -> str | None:
    """Guess a title from the first heading-like lines of page 1 (at most two joined)."""
    picked: list[str] = []
    lines = [line.strip() for line in first_page_text.splitlines() if line.strip()]
    lines = lines[:TITLE_SCAN_LINES]
    for line, next_line in zip(lines, [*lines[1:], ""], strict=False):
        kind = classify_line(line, next_line)
        if kind == "heading":
            picked.append(line)
        if len(picked) == 2 or kind == "body" or (picked and kind != "heading"):
            break
    return " ".join(picked) or None


def classify_line(line: str, next_line: str) -> str:
    """Return 'heading' (could be a title), 'body' (text has begun) or 'noise'."""
    if line.endswith((".", ",", ";")) and len(line.split()) >= TITLE_SENTENCE_WORDS:
        return "body"  # a sentence or clause
    if len(line) >= TITLE_WRAP_CHARS and next_line[:1].islower():
        return "body"  # a long line running on into the next: a wrapped paragraph
    visible = [c for c in line if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if len(line) > TITLE_MAX_CHARS or letters < 2 or letters < len(visible) / 2:
        return "noise"
    if _PAGE_NUMBER_LINE.match(line) or _DATE_LINE.match(line):
        return "noise"
    return "heading"


def clean_text(raw: str) -> str:
    """Normalise line breaks, rejoin hyphenated words and drop control characters."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n") if "\r" in raw else raw
    if "\ufffe" in text or "\x02" in text:
        text = _rejoin_marked_words(text)
    return _CONTROL_CHARS.sub("", text)


def _rejoin_marked_words(text: str) -> str:
    """Apply ``_HYPHEN_MARK`` to the text around each mark only, not to every word."""
    # A match holds no whitespace and starts after whitespace, so the regex gives the same
    # result on any slice that begins at the text's start or at a whitespace character (or
    # right after one) and ends at whitespace or the text's end: here, the run between the
    # spaces or line breaks around a mark. Trying _HYPHEN_MARK at every word costs 4x more.
    if "\x02" in text:
        # The regex treats both marks alike and clean_text drops any left afterwards, so one
        # kind suffices, found by str.find (ten times faster than a regex character class).
        text = text.replace("\x02", "\ufffe")
    pieces = []
    done = 0
    at = text.find("\ufffe")
    while at >= 0:
        start, end = _slice_start(text, done, at), _slice_end(text, at)
        pieces += (text[done:start], _HYPHEN_MARK.sub(_rejoin_hyphenated, text[start:end]))
        done = end
        at = text.find("\ufffe", done)
    pieces.append(text[done:])
    return "".join(pieces)


def _slice_start(text: str, done: int, at: int) -> int:
    """Return where the run before ``at`` starts: after a space or line break, or ``done``."""
    # ``done`` is 0 or a space or line break that ended the previous slice.
    start = max(text.rfind(" ", done, at) + 1, done)
    return max(text.rfind("\n", start, at) + 1, start)


def _slice_end(text: str, at: int) -> int:
    """Return the first space or line break after ``at``, or the text's end."""
    end = text.find(" ", at)
    end = len(text) if end < 0 else end
    newline = text.find("\n", at, end)
    return end if newline < 0 else newline


def _rejoin_hyphenated(match: re.Match[str]) -> str:
    # Most marked hyphens split one word ("rela-tively"); keep the hyphen for compounds
    # that already have one, capitals, digits and lone letters ("Quarter-over-Quarter").
    left, right = match.group(1), match.group(2)
    word = left.rsplit("-", 1)[-1]
    keep = "-" in left or len(word) < 2 or not right or not right.islower()
    return f"{left}-{right}" if keep else left + right
