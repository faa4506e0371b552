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

# One character, no "+": SRE then scans for the class with its fast set lookup, where a
# repeated class is tried as a match at every position (twice the cost). The 32 astral
# noncharacters stay out of the class: SRE tests members above U+FFFF one by one at every
# character (ten times the cost of the rest). ``in`` finds them instead, and returns at once
# on a string holding no character above U+FFFF.
_UNWANTED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_ASCII_UNWANTED = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])
_ASTRAL_NONCHARACTERS = tuple(
    chr(plane + low) for plane in range(0x10000, 0x110000, 0x10000) for low in (0xFFFE, 0xFFFF)
)
_TRAILING_BLANKS = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUN = re.compile(r"[ \t]{2,}")
_EXTRA_BLANK_LINES = re.compile(r"\n{4,}")


def sanitize_page_text(text: str, page_number: int) -> tuple[str, list[str]]:
    """Return the page's cleaned text and warnings about what was changed."""
    # Each regex but _UNWANTED's runs only when a substring check shows it can match: most
    # pages need none. _UNWANTED's substitution costs no more than a search would.
    cleaned = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
    cleaned = _drop_unwanted(cleaned)
    tabs = "\t" in cleaned
    if _has_trailing_blanks(cleaned, tabs):
        cleaned = _TRAILING_BLANKS.sub("", cleaned)
    if tabs or "  " in cleaned:  # any run of two spaces/tabs holds one of these
        cleaned = _BLANK_RUN.sub(" ", cleaned)
    if "\n\n\n\n" in cleaned:
        cleaned = _EXTRA_BLANK_LINES.sub("\n\n\n", cleaned)
    return _cap(cleaned, page_number)


def _drop_unwanted(text: str) -> str:
    """Return ``text`` without C0/C1 controls, lone surrogates and noncharacters."""
    if text.isascii():  # bytes.translate deletes five times faster than SRE scans
        return text.encode("ascii").translate(None, _ASCII_UNWANTED).decode("ascii")
    text = _UNWANTED.sub("", text)
    for char in _ASTRAL_NONCHARACTERS:
        if char in text:
            text = text.replace(char, "")
    return text


def _has_trailing_blanks(text: str, tabs: bool) -> bool:
    """Tell whether a space or tab ends a line (where ``_TRAILING_BLANKS`` matches)."""
    # In MULTILINE mode "$" matches only before a "\n" and at the end of the text.
    return " \n" in text or (tabs and "\t\n" in text) or text.endswith((" ", "\t"))


def _cap(text: str, page_number: int) -> tuple[str, list[str]]:
    """Cut the text to MAX_PAGE_BYTES of UTF-8 on a character boundary."""
    if len(text) <= MAX_PAGE_BYTES // 4:  # no character takes more than 4 bytes
        return text, []
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
