"""Clean one page of extracted text so it is safe to store, chunk and send as JSON.

Per page: line endings become ``\\n``; NUL and every other C0/C1 control except ``\\n`` and
``\\t`` is dropped, as are lone surrogates and Unicode noncharacters (pdfium marks line-end
hyphenation with U+FFFE, so dropping it also rejoins the word); runs of two or more
spaces/tabs become one space; trailing spaces leave every line; no more than two blank lines
stay in a row; the result is capped at ``MAX_PAGE_BYTES`` of UTF-8.
"""

from __future__ import annotations

import re

MAX_PAGE_BYTES = 102400

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane + 0xFFFE)}{chr(plane + 0xFFFF)}" for plane in range(0, 0x110000, 0x10000)
)
_UNWANTED = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff{_NONCHARACTERS}]+")
# A superset of _UNWANTED (every character from U+1FFFE up) that SRE scans ten times faster:
# _UNWANTED's 34 astral literals are tested one by one at each character, this set is one
# table lookup and one range. No match here proves _UNWANTED has none either.
_MAYBE_UNWANTED = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff\U0001fffe-\U0010ffff]"
)
_TRAILING_BLANKS = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUN = re.compile(r"[ \t]{2,}")
_EXTRA_BLANK_LINES = re.compile(r"\n{4,}")


def sanitize_page_text(text: str, page_number: int) -> tuple[str, list[str]]:
    """Return the page's cleaned text and warnings about what was changed."""
    # Each regex runs only when a substring check shows it can match: most pages need none.
    cleaned = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
    if _MAYBE_UNWANTED.search(cleaned):
        cleaned = _UNWANTED.sub("", cleaned)
    if _has_trailing_blanks(cleaned):
        cleaned = _TRAILING_BLANKS.sub("", cleaned)
    if "  " in cleaned or "\t" in cleaned:  # any run of two spaces/tabs holds one of these
        cleaned = _BLANK_RUN.sub(" ", cleaned)
    if "\n\n\n\n" in cleaned:
        cleaned = _EXTRA_BLANK_LINES.sub("\n\n\n", cleaned)
    return _cap(cleaned, page_number)


def _has_trailing_blanks(text: str) -> bool:
    """Tell whether a space or tab ends a line (where ``_TRAILING_BLANKS`` matches)."""
    # In MULTILINE mode "$" matches only before a "\n" and at the end of the text.
    return " \n" in text or "\t\n" in text or text.endswith((" ", "\t"))


def _cap(text: str, page_number: int) -> tuple[str, list[str]]:
    """Cut the text to MAX_PAGE_BYTES of UTF-8 on a character boundary."""
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_PAGE_BYTES:
        return text, []
    # Decoding with "ignore" drops the partial character a byte cut may leave at the end.
    capped = encoded[:MAX_PAGE_BYTES].decode("utf-8", errors="ignore")
    warning = (
        f"Page {page_number}: the text was longer than {MAX_PAGE_BYTES // 1024} KB "
        f"({len(encoded)} bytes) and was cut to the first {MAX_PAGE_BYTES} bytes."
    )
    return capped, [warning]
