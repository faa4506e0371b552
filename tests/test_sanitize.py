"""Page text sanitising: control characters, size cap, whitespace."""

from __future__ import annotations

import json
import random
import re

import sanitize
from sanitize import MAX_PAGE_BYTES, sanitize_page_text


def test_nul_and_control_characters_are_removed() -> None:
    dirty = "a\x00b\x01c\x08d\x0be\x0cf\x1bg\x7fh\x85i\x9fj"
    cleaned, warnings = sanitize_page_text(dirty, 1)
    assert cleaned == "abcdefghij"
    assert warnings == []


def test_newline_and_tab_are_kept() -> None:
    cleaned, _ = sanitize_page_text("col1\tcol2\nnext line", 1)
    assert cleaned == "col1\tcol2\nnext line"


def test_carriage_returns_become_newlines() -> None:
    cleaned, _ = sanitize_page_text("one\r\ntwo\rthree", 1)
    assert cleaned == "one\ntwo\nthree"


def test_noncharacters_and_lone_surrogates_are_removed_so_json_encodes() -> None:
    dirty = "inter\ufffemediate \ud800x\udfff \ufdd0y\uffff \U0001fffez\U0010ffff"
    cleaned, _ = sanitize_page_text(dirty, 1)
    assert cleaned == "intermediate x y z"
    json.dumps(cleaned, ensure_ascii=False).encode("utf-8")


def test_ordinary_unicode_is_untouched() -> None:
    text = "Müller’s “naïve” café — 東京 \U0001f600 \uf8eb"
    assert sanitize_page_text(text, 1) == (text, [])


def test_long_page_is_capped_on_a_character_boundary_with_a_warning() -> None:
    # 3-byte characters: 102400 is not a multiple of 3, so a byte cut lands mid-character.
    cleaned, warnings = sanitize_page_text("€" * 40000, 7)
    encoded = cleaned.encode("utf-8")
    assert len(encoded) <= MAX_PAGE_BYTES
    assert len(encoded) > MAX_PAGE_BYTES - 3
    assert encoded.decode("utf-8") == "€" * (MAX_PAGE_BYTES // 3)
    assert len(warnings) == 1
    assert "Page 7" in warnings[0]


def test_page_exactly_at_the_cap_is_not_cut() -> None:
    text = "a" * MAX_PAGE_BYTES
    assert sanitize_page_text(text, 1) == (text, [])
    cleaned, warnings = sanitize_page_text(text + "b", 2)
    assert cleaned == text
    assert "Page 2" in warnings[0]


def test_runs_of_spaces_and_tabs_collapse_to_one_space() -> None:
    cleaned, _ = sanitize_page_text("a  b \t c\t\td", 1)
    assert cleaned == "a b c d"


def test_trailing_spaces_are_stripped_from_every_line() -> None:
    cleaned, _ = sanitize_page_text("first  \nsecond\t\nthird \t ", 1)
    assert cleaned == "first\nsecond\nthird"


def test_more_than_two_blank_lines_collapse_to_two() -> None:
    cleaned, _ = sanitize_page_text("a\n\n\n\n\n\nb\n \n\t\n  \n\nc", 1)
    assert cleaned == "a\n\n\nb\n\n\nc"


def test_one_or_two_blank_lines_are_kept() -> None:
    text = "a\n\nb\n\n\nc"
    assert sanitize_page_text(text, 1) == (text, [])


# What is unwanted, in one character class: the specification _drop_unwanted must meet.
NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane + 0xFFFE)}{chr(plane + 0xFFFF)}" for plane in range(0, 0x110000, 0x10000)
)
UNWANTED = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff{NONCHARACTERS}]+")


def _sanitize_without_prechecks(text: str) -> str:
    """The regex chain ``sanitize_page_text`` stands for, every step applied unconditionally."""
    cleaned = re.sub(r"\r\n?", "\n", text)
    cleaned = UNWANTED.sub("", cleaned)
    cleaned = sanitize._TRAILING_BLANKS.sub("", cleaned)
    cleaned = sanitize._BLANK_RUN.sub(" ", cleaned)
    return sanitize._EXTRA_BLANK_LINES.sub("\n\n\n", cleaned)


# Each piece makes some pre-check pass or fail: U+20000 and U+1FFFD widen the string to 4
# bytes a character without being unwanted, U+1FFFE and U+10FFFF are unwanted.
PIECES = ["a", "é", "東", "\U0001d465", "\U0001fffd", "\U0001fffe", "\U00020000", "\U0010ffff"]
PIECES += ["\x00", "\x0b", "\x85", "\ud800", "\ufdd0", "\ufffe", "\uffff", "\ufffd", "\xa0"]
PIECES += [" ", "  ", "\t", "\n", "\n\n\n\n", "\r", "\r\n", " \n", "\t\n"]
PIECES += ["\x08", "\x1f", "\x7f"]  # the ends of the ASCII controls dropped


def test_prechecks_skip_only_steps_that_would_change_nothing() -> None:
    rng = random.Random(5)
    texts = ["".join(rng.choices(PIECES, k=rng.randint(0, 12))) for _ in range(5000)]
    texts += ["plain text\nno trouble \U0001d465 \U00020000", "trailing \t", "x\U0001fffe"]
    for text in texts:
        assert sanitize_page_text(text, 1) == (_sanitize_without_prechecks(text), [])
    paths = {
        (
            text.isascii(),
            bool(sanitize._UNWANTED.search(text)),
            any(char in text for char in sanitize._ASTRAL_NONCHARACTERS),
        )
        for text in texts
    }
    # The ASCII path, the class pass and the astral look-ups each find something in some
    # texts, not in others.
    assert paths == {(True, False, False), (True, True, False)} | {
        (False, unwanted, astral) for unwanted in (False, True) for astral in (False, True)
    }


def test_page_of_four_byte_characters_is_measured_in_bytes() -> None:
    text = "\U0001f600" * (MAX_PAGE_BYTES // 4)
    assert sanitize_page_text(text, 1) == (text, [])
    cleaned, warnings = sanitize_page_text(text + "\U0001f600", 2)
    assert cleaned == text
    assert "Page 2" in warnings[0]
