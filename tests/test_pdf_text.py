"""Page text cleaning in the parse child: hyphen marks, line breaks, control characters."""

from __future__ import annotations

import random

import pdf_text
from pdf_text import clean_text


def _clean_text_on_every_word(raw: str) -> str:
    """``clean_text`` as the plain regex chain: _HYPHEN_MARK tried at every word."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    text = pdf_text._HYPHEN_MARK.sub(pdf_text._rejoin_hyphenated, text)
    return pdf_text._CONTROL_CHARS.sub("", text)


def test_marked_hyphens_are_rejoined_or_kept() -> None:
    text = "rela\ufffetively\r\nQuarter-over\ufffequarter co\x02op Jean\ufffePaul x\ufffe"
    assert clean_text(text) == "relatively\nQuarter-over-quarter coop Jean-Paul x-"


# Marks of both kinds, every kind of whitespace the slices must cut at or pass over.
PIECES = ["\ufffe", "\x02", "\ufffe\ufffe", " ", "\n", "\r\n", "\r", "\t", "\xa0", "\x1c", "\u2028"]
PIECES += ["a", "bc", "Q", "7", "-", "a-b", "\x00", "\uffff", "é"]


def test_rejoining_around_each_mark_equals_the_regex_on_every_word() -> None:
    rng = random.Random(3)
    texts = ["".join(rng.choices(PIECES, k=rng.randint(0, 16))) for _ in range(5000)]
    for text in texts:
        assert clean_text(text) == _clean_text_on_every_word(text), repr(text)
    # Both paths ran: texts with no mark skip the rejoining, the others take it.
    assert any("\ufffe" in text or "\x02" in text for text in texts)
    assert any("\ufffe" not in text and "\x02" not in text for text in texts)
