"""Split a document's page texts into overlapping chunks that know which pages they came from.

How it works, in linear time:

1. Each page is normalised on its own: NFKC; a word hyphenated across a line end is joined
   when the continuation is lower case ("extrac-\ntion" -> "extraction", and so, knowingly,
   "well-\nknown" -> "wellknown"), otherwise the hyphen stays ("Jean-\nPaul" -> "Jean-Paul");
   single spaces inside paragraphs; one blank line between paragraphs.
2. The pages are joined into one document string, remembering the span each page occupies.
   A page that ends mid-sentence and a next page that starts in lower case are joined by a
   space (the sentence continues); otherwise by a paragraph break. A word hyphenated across
   the page break is rejoined. Empty pages take no span.
3. The document string is cut into units, each a span of it: sentences, or, for a sentence
   longer than the chunk size, its words, or, for a longer word, hard cuts.
4. Units are packed greedily; a chunk's text is the document slice from its first unit's start
   to its last unit's end, so its pages are exactly the page spans that slice touches.
   The next chunk begins with whole trailing sentences of the previous one totalling at most
   the overlap (none if no sentence fits).
"""

from __future__ import annotations

import bisect
import operator
import re
import unicodedata
from itertools import accumulate, compress, count, filterfalse
from typing import NamedTuple

MAX_CHUNK_CHARS = 2000
MIN_CHUNK_CHARS = 100
MAX_CHUNKS = 10000

_HYPHENS = "-\u2010"
# A letter, a hyphen, a line end and a letter: one pattern per hyphen, each starting with the
# hyphen (SRE scans for a leading literal, but tries a leading letter class at every letter:
# 40x the cost), the letter before it looked behind for.
_LINE_END_HYPHENS = tuple(
    (hyphen, re.compile(rf"({escaped})(?<=[^\W\d_]{escaped})[ \t]*\n[ \t]*(?=([^\W\d_]))"))
    for hyphen, escaped in zip(_HYPHENS, map(re.escape, _HYPHENS), strict=True)
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# Every whitespace character NFKC leaves but " " and "\n" ("\r" is gone before this is looked
# for); a test checks the list against the Unicode database.
_RARE_WHITESPACE = "\t\x0b\x0c\x1c\x1d\x1e\x1f\x85\u1680\u2028\u2029"
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")
_SENTENCE_CLOSERS = ".!?\u2026:;\"'\u201d\u2019)]"
# Tokens that end in "." without ending a sentence ("Dr. Smith", "Fig. 3", "et al. (2020)").
_ABBREVIATION_WORDS = """
    Mr Mrs Ms Dr Prof Sr Jr St Rev Gen Col Capt Lt Sgt Hon e.g i.e cf vs al approx pp
    Fig Figs fig figs Eq Eqs eq eqs No Nos Vol vol Ch Sec Art Ref Refs
    Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec
"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_MARKS = ".!?\u2026"  # a sentence ends with a run of these,
_CLOSERS = "\"'\u201d\u2019)\\]"  # then any of these (in a regex class), then a space
# Characters str.islower() is False for: a sentence end before one needs no Python call.
_NOT_LOWER = "!-`{-~\u2013\u2014\u2018\u201c\xc0-\xde"


def _sentence_end_pattern(mark: str) -> re.Pattern[str]:
    """Compile the sentence ends whose run of marks starts with ``mark``.

    It matches where "[.!?…]+[closers]* (?=\\S)" does, save before a-z: with no group where a
    sentence surely ends, with one where ``_ends_sentence`` must decide (a lone "." after what
    may be an abbreviation or initials, or a next character only str.islower() can judge).
    """
    escaped = re.escape(mark)
    first = f"{escaped}(?<![{_MARKS}]{escaped})"  # SRE scans for the literal it starts with
    rest = f"[{_MARKS}]*[{_CLOSERS}]* "
    sure = f"(?=[{_NOT_LOWER}])"
    judged = f"(?=[^\\s{_NOT_LOWER}a-z])()"
    if mark != ".":
        return re.compile(f"{first}{rest}(?:{sure}|{judged})")
    letter = r"[^\W\d_]"
    # A lone "." after two letters that end no abbreviation (a word boundary before it), or
    # after a non-letter, ends a sentence: no initials nor abbreviation can end there.
    no_abbreviation = "".join(f"(?<!\\b(?:{words})\\. )" for words in _abbreviations_by_length())
    lone = f" {sure}(?:(?<={letter}{letter}\\. ){no_abbreviation}|(?<!{letter}\\. ))"
    more = f"(?:[{_MARKS}]+[{_CLOSERS}]*|[{_CLOSERS}]+) {sure}"
    return re.compile(f"{first}(?:{lone}|{more}|{rest}{judged}| {sure}())")


def _abbreviations_by_length() -> list[str]:
    """Return the abbreviations as one regex alternation per length."""
    by_length: dict[int, list[str]] = {}
    for word in sorted(_ABBREVIATIONS):
        by_length.setdefault(len(word), []).append(re.escape(word))
    return ["|".join(words) for words in by_length.values()]


_SENTENCE_ENDS = tuple((mark, _sentence_end_pattern(mark)) for mark in _MARKS)
_DOUBTFUL = operator.attrgetter("lastindex")


class _Units(NamedTuple):
    """Spans of the document in order, as position lists (a tuple per unit costs an object)."""

    starts: list[int]
    ends: list[int]
    sentence_starts: list[int]  # the starts of the units that begin a sentence

    def extend(self, more: _Units) -> None:
        """Append the units that follow these."""
        for positions, following in zip(self, more, strict=True):
            positions.extend(following)


class _Document(NamedTuple):
    text: str
    page_starts: list[int]
    page_ends: list[int]
    page_numbers: list[int]


def chunk_pages(
    pages: list[tuple[int, str]], chunk_size: int = 1500, chunk_overlap: int = 400
) -> tuple[list[dict], list[str]]:
    """Split (page_number, text) pages into chunks with exact page provenance.

    Both numbers pass through ``int()``, then ``chunk_size`` is silently clamped to
    [100, MAX_CHUNK_CHARS] and ``chunk_overlap`` to [0, chunk_size // 2]; the API validates
    user input before calling this. Returns the chunks and warnings (for example when the
    document hit MAX_CHUNKS).
    """
    chunker = Chunker(chunk_size, chunk_overlap)
    for number, text in pages:
        chunker.add_page(number, text)
    return chunker.finish()


class Chunker:
    """``chunk_pages`` fed one page at a time, as pages arrive (in ``chunk_pages``' order).

    Each page is normalised and its finished paragraphs cut into units when it is added, so
    after the last page only its own paragraphs, the packing and the chunk dicts remain.
    A page's text is final once the next non-empty page is known (the join between them may
    drop its trailing hyphen), so the latest page waits in ``_held`` until then.
    """

    def __init__(self, chunk_size: int = 1500, chunk_overlap: int = 400) -> None:
        self.size = min(max(int(chunk_size), MIN_CHUNK_CHARS), MAX_CHUNK_CHARS)
        self.overlap = min(max(int(chunk_overlap), 0), self.size // 2)
        self._document = _Document("", [], [], [])
        self._parts: list[str] = []
        self._length = 0  # characters in _parts
        self._held: tuple[int, str] | None = None  # the latest page, its join not yet known
        self._tail: list[str] = []  # document text not yet cut into units
        self._tail_start = 0  # where the tail starts in the document
        self._units = _Units([], [], [])

    def add_page(self, number: int, text: str) -> None:
        """Take the next page (in the order ``chunk_pages`` would be given them)."""
        text = normalize_page_text(text)
        if not text:
            return
        if self._held is not None:
            held_number, held_text = self._held
            before = self._length
            piece = self._append(held_number, *_page_join(held_text, text))
            # A paragraph followed by a line break can no longer grow: cut up to that break.
            if (newline := piece.rfind("\n")) >= 0:
                self._cut(before + newline + 1)
        self._held = (number, text)

    def finish(self) -> tuple[list[dict], list[str]]:
        """Return the chunks and warnings of every page added, as ``chunk_pages`` does."""
        if self._held is not None:
            self._append(*self._held, "")
            self._held = None
        self._cut(self._length)
        document = self._document._replace(text="".join(self._parts))
        if not document.text:
            return [], []
        spans, truncated = _pack(self._units, self.size, self.overlap)
        chunks = [_chunk(index, document, start, end) for index, (start, end) in enumerate(spans)]
        return chunks, [_cap_warning()] if truncated else []

    def _append(self, number: int, text: str, separator: str) -> str:
        """Add one page's final text and its separator to the document; return both."""
        self._document.page_starts.append(self._length)
        self._document.page_ends.append(self._length + len(text))
        self._document.page_numbers.append(number)
        piece = text + separator
        self._parts.append(piece)
        self._tail.append(piece)
        self._length += len(piece)
        return piece

    def _cut(self, end: int) -> None:
        """Cut the document up to ``end`` (a paragraph's end) into units."""
        if end <= self._tail_start:
            return
        base = self._tail_start
        tail = "".join(self._tail)
        self._units.extend(_split_units(tail[: end - base], self.size, base))
        self._tail = [tail[end - base :]]
        self._tail_start = end


def normalize_page_text(text: str) -> str:
    """Return NFKC text with hyphenated line ends joined and whitespace unified."""
    # Each step runs only when a check (isascii is a flag, "in" a C memchr) shows it has work.
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    if "\u00ad" in text:
        text = text.replace("\u00ad", "")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    for hyphen, line_end in _LINE_END_HYPHENS:
        if hyphen in text:
            text = line_end.sub(_join_hyphenated, text)
    parts = _PARAGRAPH_BREAK.split(text)
    if any(map(text.__contains__, _RARE_WHITESPACE)):
        # str.split() cuts at the same characters as regex "\s" (str.isspace), at C speed.
        paragraphs = (" ".join(part.split()) for part in parts)
    else:
        # The same for a part of spaces and line breaks only, without str.split()'s object
        # per word (it was most of the normalisation's cost).
        paragraphs = (_single_spaced(part.replace("\n", " ")) for part in parts)
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def _join_hyphenated(match: re.Match[str]) -> str:
    # Only a lower-case continuation is a split word; "Jean-\nPaul" keeps its hyphen.
    return "" if match.group(2).islower() else match.group(1)


def _single_spaced(text: str) -> str:
    """Return the text stripped, each run of spaces made one space."""
    while "  " in text:
        text = text.replace("  ", " ")
    return text.strip()


def split_sentences(paragraph: str) -> list[str]:
    """Split one normalised paragraph (single spaces, no line breaks) into sentences."""
    starts, ends = _sentence_spans(paragraph, [0], [len(paragraph)])
    return [paragraph[start:end] for start, end in zip(starts, ends, strict=True)]


def _page_join(previous: str, following: str) -> tuple[str, str]:
    """Return the previous page's text (maybe unhyphenated) and the separator to the next."""
    if not following[0].islower():
        return previous, "\n\n"
    if previous[-1] in _HYPHENS and len(previous) > 1 and previous[-2].isalpha():
        return previous[:-1], ""
    if previous[-1] in _SENTENCE_CLOSERS:
        return previous, "\n\n"
    return previous, " "


def _split_units(text: str, size: int, offset: int = 0) -> _Units:
    """Cut the text into sentence units no longer than ``size``, spans shifted by ``offset``."""
    starts, ends = _sentence_spans(text, *_paragraph_spans(text), offset)
    if max(map(operator.sub, ends, starts), default=0) > size:
        return _Units(*_cut_long_sentences(text, offset, starts, ends, size), starts)
    return _Units(starts, ends, starts)


def _paragraph_spans(text: str) -> tuple[list[int], list[int]]:
    """Return the starts and the ends of the text's paragraphs: its lines that are not empty."""
    # str.find looks for line breaks with memchr, where a regex steps through every character.
    starts: list[int] = []
    ends: list[int] = []
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        if end > start:
            starts.append(start)
            ends.append(end)
        start = end + 1
    return starts, ends


def _sentence_spans(
    text: str, paragraph_starts: list[int], paragraph_ends: list[int], offset: int = 0
) -> tuple[list[int], list[int]]:
    """Return the starts and the ends of the paragraphs' sentences, moved ``offset`` on."""
    breaks = [offset + start for start in _sentence_breaks(text, paragraph_starts)]
    starts = [offset + start for start in paragraph_starts] + breaks
    ends = [offset + end for end in paragraph_ends] + [start - 1 for start in breaks]
    # Each break is inside a paragraph, so the sorted lists pair each sentence's start and end.
    return sorted(starts), sorted(ends)


def _sentence_breaks(text: str, paragraph_starts: list[int]) -> list[int]:
    """Return where the sentences that follow a sentence end start, in order."""
    breaks: list[int] = []
    for mark, pattern in _SENTENCE_ENDS:
        if mark not in text:  # a C memchr: cheaper than the pattern's scan
            continue
        matches = list(pattern.finditer(text))
        breaks += map(re.Match.end, filterfalse(_DOUBTFUL, matches))
        for match in filter(_DOUBTFUL, matches):
            paragraph = bisect.bisect_right(paragraph_starts, match.start()) - 1
            if _ends_sentence(text, match, paragraph_starts[paragraph]):
                breaks.append(match.end())
    breaks.sort()
    return breaks


def _ends_sentence(text: str, match: re.Match[str], paragraph_start: int) -> bool:
    """Tell whether a terminal-punctuation match really ends a sentence."""
    start, end = match.span()
    if text[end].islower():
        return False
    if end - start != 2 or text[start] != ".":  # the punctuation is not a lone "."
        return True
    # rfind gives -1 when the token is the paragraph's first word.
    token_start = max(text.rfind(" ", paragraph_start, start) + 1, paragraph_start)
    token = text[token_start:start].lstrip("([\"'\u201c\u2018")
    return not (token in _ABBREVIATIONS or _could_be_initials(token) and _INITIALS.fullmatch(token))


def _could_be_initials(token: str) -> bool:
    """Tell cheaply whether ``_INITIALS`` can match: "A" or "A.B", "A.B.C", ..."""
    return len(token) == 1 or token[1:2] == "."


def _cut_long_sentences(
    text: str, offset: int, starts: list[int], ends: list[int], size: int
) -> tuple[list[int], list[int]]:
    """Return the unit starts and ends with each sentence longer than ``size`` cut into words."""
    unit_starts: list[int] = []
    unit_ends: list[int] = []
    done = 0
    for index in compress(count(), map(size.__lt__, map(operator.sub, ends, starts))):
        word_starts, word_ends = _word_units(text, offset, starts[index], ends[index], size)
        unit_starts += starts[done:index] + word_starts
        unit_ends += ends[done:index] + word_ends
        done = index + 1
    return unit_starts + starts[done:], unit_ends + ends[done:]


def _word_units(
    text: str, offset: int, start: int, end: int, size: int
) -> tuple[list[int], list[int]]:
    """Return the starts and ends of a sentence's words, hard-cutting words longer than ``size``."""
    # A normalised paragraph is words between single spaces, so the words' lengths place them:
    # no match object per word (table rows are long runs of short words).
    lengths = list(map(len, text[start - offset : end - offset].split(" ")))
    word_starts = list(accumulate([length + 1 for length in lengths[:-1]], initial=start))
    word_ends = list(map(operator.add, word_starts, lengths))
    if max(lengths) <= size:
        return word_starts, word_ends
    cut_starts: list[int] = []
    cut_ends: list[int] = []
    for word_start, word_end in zip(word_starts, word_ends, strict=True):
        cuts = range(word_start, word_end, size)
        cut_starts += cuts
        cut_ends += [min(cut + size, word_end) for cut in cuts]
    return cut_starts, cut_ends


def _pack(units: _Units, size: int, overlap: int) -> tuple[list[tuple[int, int]], bool]:
    """Pack units into (start, end) chunk spans; report whether MAX_CHUNKS cut the document."""
    starts, ends = units.starts, units.ends
    spans: list[tuple[int, int]] = []
    first = 0
    next_new = 0
    while next_new < len(starts):
        if len(spans) == MAX_CHUNKS:
            return spans, True
        # Units are disjoint and in order, so their ends rise: the last unit that fits is
        # found by bisection (from the next new one, which always fits, so the loop advances).
        last = bisect.bisect_right(ends, starts[first] + size, next_new + 1) - 1
        spans.append((starts[first], ends[last]))
        next_new = last + 1
        if next_new < len(starts):
            first = _overlap_start(units, first, last, size, overlap)
    return spans, False


def _overlap_start(units: _Units, first: int, last: int, size: int, overlap: int) -> int:
    """Return the unit the next chunk starts at: the earliest fitting trailing sentence."""
    starts, sentence_starts = units.starts, units.sentence_starts
    # The earliest sentence start within the overlap of the chunk's end and within the size of
    # the next new unit's end (which did not fit after the chunk's first unit: none is first).
    lowest = max(units.ends[last] - overlap, units.ends[last + 1] - size)
    candidate = bisect.bisect_left(starts, lowest)
    if candidate > last:
        return last + 1
    sentence = bisect.bisect_left(sentence_starts, starts[candidate])
    if sentence == len(sentence_starts) or sentence_starts[sentence] > starts[last]:
        return last + 1
    return bisect.bisect_left(starts, sentence_starts[sentence], candidate, last + 1)


def _chunk(index: int, document: _Document, start: int, end: int) -> dict:
    """Build the chunk dict for one document span."""
    text = document.text[start:end]
    pages = _pages_touching(document, start, end)
    return {
        "chunk_index": index,
        "text": text,
        "char_count": len(text),
        "pages": pages,
        "start_page": pages[0],
        "end_page": pages[-1],
    }


def _pages_touching(document: _Document, start: int, end: int) -> list[int]:
    """Return the sorted page numbers whose spans share a character with [start, end)."""
    first = bisect.bisect_right(document.page_ends, start)
    last = bisect.bisect_left(document.page_starts, end)
    return sorted(document.page_numbers[first:last])


def _cap_warning() -> str:
    return (
        f"The document produced more than {MAX_CHUNKS} chunks; only the first {MAX_CHUNKS} "
        "were kept. Use a larger chunk_size or select fewer pages."
    )
