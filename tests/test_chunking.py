"""Chunking: exact page provenance, sentence-aligned overlap, size limits, normalisation."""

from __future__ import annotations

import random
import re
import unicodedata
from pathlib import Path

import pypdfium2
import pytest

import chunking
from chunking import (
    MAX_CHUNK_CHARS,
    MAX_CHUNKS,
    chunk_pages,
    normalize_page_text,
    split_sentences,
)
from sanitize import sanitize_page_text

MARKER = re.compile(r"[Pp](\d+)w\d+")
MARKED_WORD = re.compile(r"[Pp]\d+w\d+")
SIZES_AND_OVERLAPS = [
    (100, 0),
    (100, 50),
    (150, 40),
    (300, 120),
    (700, 0),
    (1500, 400),
    (2000, 1000),
]


def marked_pages(page_numbers: list[int], seed: int) -> list[tuple[int, str]]:
    """Build pages whose every word names its page ("p7w12"), with cross-page sentences."""
    rng = random.Random(seed)
    pages = []
    continues = False
    for number in page_numbers:
        sentences = [marked_sentence(rng, number, k) for k in range(rng.choice([0, 1, 3, 8, 12]))]
        if sentences and continues:
            sentences[0] = sentences[0][0].lower() + sentences[0][1:]
        continues = bool(sentences) and rng.random() < 0.4
        if continues:
            sentences[-1] = sentences[-1][:-1]
        text = "".join(s + rng.choice([" ", "\n", "\n\n", "  \n"]) for s in sentences)
        pages.append((number, text or rng.choice(["", "  \n\n \t"])))
    return pages


def marked_sentence(rng: random.Random, page: int, index: int) -> str:
    """Return one capitalised sentence of page-marked words, sometimes very long."""
    count = rng.choice([1, 4, 12, 30, 400]) if index % 5 else rng.randint(2, 20)
    words = [f"p{page}w{rng.randint(0, 999)}" for _ in range(count)]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".?!")


def pages_named_in(text: str) -> list[int]:
    return sorted({int(page) for page in MARKER.findall(text)})


def check_chunk_shape(chunks: list[dict], size: int) -> None:
    for index, chunk in enumerate(chunks):
        assert chunk["chunk_index"] == index
        assert chunk["char_count"] == len(chunk["text"]) <= size <= MAX_CHUNK_CHARS
        assert chunk["text"] == chunk["text"].strip()
        assert chunk["pages"] == sorted(chunk["pages"])
        assert chunk["start_page"] == chunk["pages"][0]
        assert chunk["end_page"] == chunk["pages"][-1]


@pytest.mark.parametrize("seed", range(6))
def test_every_chunk_lists_exactly_the_pages_its_text_came_from(seed: int) -> None:
    pages = marked_pages(list(range(1, 15)), seed)
    source_words = set(MARKED_WORD.findall(" ".join(text for _, text in pages)))
    for size, overlap in SIZES_AND_OVERLAPS:
        chunks, warnings = chunk_pages(pages, size, overlap)
        assert warnings == []
        check_chunk_shape(chunks, size)
        for chunk in chunks:
            assert chunk["pages"] == pages_named_in(chunk["text"]), (size, overlap, chunk)
        chunk_words = set(MARKED_WORD.findall(" ".join(c["text"] for c in chunks)))
        assert chunk_words == source_words


def test_chunks_spanning_a_page_break_list_both_pages() -> None:
    pages = [(1, "First page sentence one. And it"), (2, "continues on page two. Done.")]
    chunks, _ = chunk_pages(pages, 2000, 0)
    assert [c["pages"] for c in chunks] == [[1, 2]]
    assert chunks[0]["text"] == "First page sentence one. And it continues on page two. Done."


def test_single_page_document_gives_page_one_for_every_chunk() -> None:
    text = " ".join(f"Sentence {i} is about the single page and its words." for i in range(300))
    chunks, _ = chunk_pages([(1, text)], 500, 100)
    assert len(chunks) > 10
    assert all(c["pages"] == [1] and c["start_page"] == c["end_page"] == 1 for c in chunks)


def test_non_contiguous_page_numbers_are_reported_as_given() -> None:
    pages = marked_pages([2, 5, 9], seed=11)
    pages = [(n, text or f"P{n}w1 stands alone.") for n, text in pages]
    chunks, _ = chunk_pages(pages, 100, 30)
    assert {p for c in chunks for p in c["pages"]} == {2, 5, 9}
    for chunk in chunks:
        assert chunk["pages"] == pages_named_in(chunk["text"])
    small = [(2, "Page two."), (5, "Page five."), (9, "Page nine.")]
    assert [c["pages"] for c in chunk_pages(small)[0]] == [[2, 5, 9]]


def test_empty_pages_contribute_nothing() -> None:
    assert chunk_pages([]) == ([], [])
    assert chunk_pages([(1, ""), (2, "  \n\n\t "), (3, "\n")]) == ([], [])
    chunks, _ = chunk_pages([(1, ""), (2, "Only text."), (3, "   ")])
    assert [(c["text"], c["pages"]) for c in chunks] == [("Only text.", [2])]


def numbered_sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"Sentence {i} says {'more ' * rng.randint(0, 15)}end." for i in range(count)]


@pytest.mark.parametrize(("size", "overlap"), [(300, 150), (500, 100), (1500, 400), (800, 0)])
def test_overlap_is_whole_trailing_sentences_within_the_limit(size: int, overlap: int) -> None:
    sentences = numbered_sentences(400, seed=size)
    document = " ".join(sentences)
    starts = [document.index(s) for s in sentences]
    chunks, _ = chunk_pages([(1, document)], size, overlap)
    spans = [
        (document.index(c["text"]), document.index(c["text"]) + c["char_count"]) for c in chunks
    ]
    assert spans[0][0] == 0 and spans[-1][1] == len(document)
    assert all(
        start in starts and (end == len(document) or document[end] == " ") for start, end in spans
    )
    for (prev_start, prev_end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert next_start > prev_start
        assert next_start <= prev_end + 1
        assert max(prev_end - next_start, 0) <= overlap
        assert next_start == expected_next_start(
            document, starts, (prev_start, prev_end), size, overlap
        )
    overlapping = sum(1 for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1])
    assert overlapping > len(spans) // 2 if overlap else overlapping == 0


def expected_next_start(
    document: str, starts: list[int], prev: tuple[int, int], size: int, overlap: int
) -> int:
    """Earliest sentence start inside the previous chunk that fits both limits."""
    prev_start, prev_end = prev
    following = next(s for s in starts if s > prev_end)
    following_end = next((s - 1 for s in starts if s > following), len(document))
    candidates = [
        s
        for s in starts
        if prev_start < s < prev_end and prev_end - s <= overlap and following_end - s <= size
    ]
    return min(candidates, default=following)


def test_over_long_sentences_split_by_words_never_start_an_overlap() -> None:
    long_sentence = "Long " + " ".join(f"w{i}" for i in range(400)) + "."
    sentences = ["Short one.", long_sentence, "Tiny.", long_sentence.replace("w", "v"), "End."]
    document = " ".join(sentences)
    starts = {document.index(s) for s in sentences}
    chunks, _ = chunk_pages([(1, document)], 200, 100)
    spans = [
        (document.index(c["text"]), document.index(c["text"]) + c["char_count"]) for c in chunks
    ]
    assert " ".join(c["text"] for c in chunks).count("w399") >= 1
    for (_, prev_end), (next_start, _) in zip(spans, spans[1:], strict=False):
        if next_start < prev_end:
            assert next_start in starts, document[next_start : next_start + 30]
        else:
            assert next_start == prev_end + 1


def test_no_chunk_exceeds_the_maximum_even_for_a_huge_token() -> None:
    token = "x" * 50_000
    pages = [(1, f"An intro sentence. {token} Then some tail words."), (2, "Page two ends.")]
    for size in (100, 2000, 5000, 10**6):
        chunks, _ = chunk_pages(pages, size, 400)
        assert max(c["char_count"] for c in chunks) <= min(size, MAX_CHUNK_CHARS)
        assert sum(c["text"].count("x") for c in chunks) >= 50_000
        assert chunks[-1]["text"].endswith("Page two ends.")
        assert chunks[-1]["pages"][-1] == 2
        assert all(c["pages"] == [1] for c in chunks if "xxxx" in c["text"])


def test_a_word_longer_than_the_size_is_cut_into_pieces_of_the_size() -> None:
    pages = [(1, f"Intro. {'x' * 250} tail. Next {'y' * 101} end.")]
    texts = [chunk["text"] for chunk in chunk_pages(pages, 100, 0)[0]]
    assert texts == ["Intro.", "x" * 100, "x" * 100, "x" * 50 + " tail. Next", "y" * 100, "y end."]


def test_chunk_size_and_overlap_are_clamped() -> None:
    text = " ".join(f"Word{i}." for i in range(500))
    chunks, _ = chunk_pages([(1, text)], chunk_size=10, chunk_overlap=-5)
    assert max(c["char_count"] for c in chunks) <= 100
    assert max(c["char_count"] for c in chunks) > 90
    joined = " ".join(c["text"] for c in chunks)
    assert joined == text  # overlap clamped to 0: chunks tile the text exactly


def test_document_is_cut_at_max_chunks_with_a_warning() -> None:
    # Each sentence is 94 characters, so at chunk_size 100 every chunk holds exactly one.
    sentences = [f"Sentence {i:06d} {'z' * 77}." for i in range(MAX_CHUNKS + 50)]
    pages = [(n + 1, " ".join(sentences[n * 100 : n * 100 + 100])) for n in range(101)]
    chunks, warnings = chunk_pages(pages, 100, 0)
    assert len(chunks) == MAX_CHUNKS
    assert chunks[-1]["chunk_index"] == MAX_CHUNKS - 1
    assert chunks[-1]["text"] == sentences[MAX_CHUNKS - 1]
    assert len(warnings) == 1 and str(MAX_CHUNKS) in warnings[0]


def test_words_hyphenated_across_lines_are_joined() -> None:
    assert normalize_page_text("The extrac-\ntion of in-  \n  formation.") == (
        "The extraction of information."
    )
    assert normalize_page_text("Jean-\nPaul met a co-\n2 pilot.") == "Jean-Paul met a co- 2 pilot."
    chunks, _ = chunk_pages([(1, "Good data extrac-"), (2, "tion matters.")])
    assert [(c["text"], c["pages"]) for c in chunks] == [("Good data extraction matters.", [1, 2])]


def test_text_is_nfkc_normalised() -> None:
    chunks, _ = chunk_pages([(1, "The ﬁle ﬂow uses ＡＢＣ and ①.")])
    assert chunks[0]["text"] == "The file flow uses ABC and 1."


def test_whitespace_is_unified_and_paragraph_breaks_kept() -> None:
    text = "First  line\nof para\tone.\n\n\n\nSecond \n  para."
    assert normalize_page_text(text) == "First line of para one.\n\nSecond para."
    assert chunk_pages([(1, text)])[0][0]["text"] == "First line of para one.\n\nSecond para."


def test_sentence_splitter_respects_abbreviations_and_decimals() -> None:
    paragraph = (
        "Dr. Smith met Mrs. Jones, e.g. at noon. The U.S. Army paid 3.14 dollars. "
        "See Fig. 2 and Smith et al. (2020) for i.e. details. Is it true? Yes! "
        'He said "Stop." Then he left...'
    )
    assert split_sentences(paragraph) == [
        "Dr. Smith met Mrs. Jones, e.g. at noon.",
        "The U.S. Army paid 3.14 dollars.",
        "See Fig. 2 and Smith et al. (2020) for i.e. details.",
        "Is it true?",
        "Yes!",
        'He said "Stop."',
        "Then he left...",
    ]


def test_overlap_never_starts_inside_an_abbreviation() -> None:
    text = " ".join(f"Dr. Who number {i:02d} met the U.S. team at 3.14 pm." for i in range(60))
    chunks, _ = chunk_pages([(1, text)], 100, 50)
    assert len(chunks) > 30
    assert all(c["text"].startswith("Dr. Who number") for c in chunks)
    assert all(c["text"].count("Dr. Who") == 2 for c in chunks[:-1])


def pdf_page_texts(path: Path) -> list[tuple[int, str]]:
    """Extract and sanitise each page's text with pypdfium2."""
    document = pypdfium2.PdfDocument(path)
    try:
        pages = []
        for index in range(len(document)):
            raw = document[index].get_textpage().get_text_range()
            pages.append((index + 1, sanitize_page_text(raw, index + 1)[0]))
        return pages
    finally:
        document.close()


@pytest.mark.parametrize(("size", "overlap"), [(1500, 400), (400, 100), (250, 0)])
def test_real_pdf_chunks_cover_every_sentence_with_the_right_pages(
    corpus: Path, size: int, overlap: int
) -> None:
    pages = pdf_page_texts(corpus / "clean" / "pdflatex-4-pages.pdf")
    chunks, warnings = chunk_pages(pages, size, overlap)
    assert warnings == []
    check_chunk_shape(chunks, size)
    normalised = [(number, normalize_page_text(text)) for number, text in pages]
    for _, text in normalised:
        for paragraph in text.split("\n\n"):
            for sentence in split_sentences(paragraph):
                assert any(sentence in chunk["text"] for chunk in chunks), sentence
    assert [c["pages"] for c in chunks] == pages_by_tiling(normalised, chunks, overlap)


def pages_by_tiling(
    normalised: list[tuple[int, str]], chunks: list[dict], overlap: int
) -> list[list[int]]:
    """Place each chunk in the whitespace-free document and read off the pages it touches."""
    squeeze = re.compile(r"\s+")
    bounds, offset = [], 0
    for number, text in normalised:
        length = len(squeeze.sub("", text))
        bounds.append((number, offset, offset + length))
        offset += length
    document = "".join(squeeze.sub("", text) for _, text in normalised)
    result, previous, end = [], "", 0
    for chunk in chunks:
        text = squeeze.sub("", chunk["text"])
        longest = min(len(previous), len(text), overlap)
        shared = max(n for n in range(longest + 1) if previous.endswith(text[:n]))
        start = end - shared
        assert document[start : start + len(text)] == text
        end = start + len(text)
        result.append([n for n, low, high in bounds if low < end and high > start])
        previous = text
    assert end == len(document)
    return result


# Characters that steer each shortcut of normalize_page_text and the sentence splitter.
PIECES = ["a", "Z", "é", "Σ", "7", "_", "-", "\u2010", "\u00ad", "ﬁ", "Ａ", " ", "  ", "\t"]
PIECES += ["\n", "\n\n", "\r\n", "\r", "\xa0", "\u2028", "\x1c", "\u3000", ".", "!", "?", "…"]
PIECES += ['"', "'", "”", "’", ")", "]", "(", "Dr", "U.S", "e.g", "A.B", "no"]


# The same without the whitespace that sends normalize_page_text to its str.split() path.
SPACES_AND_LINE_BREAKS = [piece for piece in PIECES if not set(piece) & set("\t\xa0\u2028\x1c")]
SPACES_AND_LINE_BREAKS += ["   ", " \n", "\n ", " \n \n ", "\n\n\n\n", "a-\n", "Z\u2010 \n "]


def _random_texts(count: int = 4000, pieces: list[str] = PIECES) -> list[str]:
    rng = random.Random(17)
    return ["".join(rng.choices(pieces, k=rng.randint(0, 20))) for _ in range(count)]


PLAIN_LINE_END_HYPHEN = re.compile(r"([^\W\d_])([-\u2010])[ \t]*\n[ \t]*(?=([^\W\d_]))")


def _join_at_plain_hyphen(match: re.Match[str]) -> str:
    if match.group(3).islower():
        return match.group(1)
    return match.group(1) + match.group(2)


def _normalize_without_shortcuts(text: str) -> str:
    """normalize_page_text as the plain regex chain, every step applied."""
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = PLAIN_LINE_END_HYPHEN.sub(_join_at_plain_hyphen, text)
    parts = (re.sub(r"\s+", " ", part).strip() for part in chunking._PARAGRAPH_BREAK.split(text))
    return "\n\n".join(part for part in parts if part)


def test_normalize_shortcuts_give_the_plain_regex_result() -> None:
    texts = _random_texts() + _random_texts(pieces=SPACES_AND_LINE_BREAKS)
    texts += ["extrac-\ntion", "co- \t\n pilot", "Jean\u2010\nPaul"]
    joined = split = replaced = 0
    for text in texts:
        assert normalize_page_text(text) == _normalize_without_shortcuts(text), repr(text)
        nfkc = unicodedata.normalize("NFKC", text).replace("\r", "\n")
        joined += bool(PLAIN_LINE_END_HYPHEN.search(nfkc))
        if any(character in nfkc for character in chunking._RARE_WHITESPACE):
            split += 1
        else:
            replaced += bool(re.search(" [ \n]|\n ", nfkc.strip()))
    assert joined and split and replaced  # every path ran


def test_rare_whitespace_is_all_whitespace_nfkc_gives_but_space_and_line_break() -> None:
    nfkc = (unicodedata.normalize("NFKC", chr(code)) for code in range(0x110000))
    given = {character for text in nfkc for character in text if character.isspace()}
    assert given - {" ", "\n", "\r"} == set(chunking._RARE_WHITESPACE)


PLAIN_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]* (?=\S)")
# Words, initials, abbreviations and the characters around sentence ends that steer
# _sentence_breaks: the sure, the judged and the skipped ends.
SENTENCE_PIECES = ["word", "Word", "ab", "AB", "x", "X", "7", "é", "É", "ß", "ª", "ǅ", "Σ", "_"]
SENTENCE_PIECES += ["Dr", "Mr", "Mrs", "e.g", "i.e", "al", "approx", "Sept", "Figs", "U.S", "A.B"]
SENTENCE_PIECES += [".", ".", "!", "?", "…", '"', "'", "”", "’", ")", "]", "(", "“", "‘", "—", "-"]
SENTENCE_PIECES += [" ", " ", " ", "\n"]


def _plain_sentence_breaks(text: str) -> list[int]:
    """Where sentences start after an end, by the plain pattern and _ends_sentence alone."""
    breaks = []
    for paragraph in re.finditer(r"[^\n]+", text):
        for match in PLAIN_SENTENCE_END.finditer(text, paragraph.start(), paragraph.end()):
            if chunking._ends_sentence(text, match, paragraph.start()):
                breaks.append(match.end())
    return breaks


def test_sentence_end_patterns_break_where_the_plain_pattern_and_its_checks_do() -> None:
    not_lower = re.findall(f"[{chunking._NOT_LOWER}]", "".join(map(chr, range(0x110000))))
    assert not any(character.islower() or character.isspace() for character in not_lower)
    routes = {"sure": 0, "judged and kept": 0, "judged and dropped": 0}
    for text in _random_texts(pieces=SENTENCE_PIECES):
        paragraph_starts = [match.start() for match in re.finditer(r"[^\n]+", text)]
        expected = _plain_sentence_breaks(text)
        assert chunking._sentence_breaks(text, paragraph_starts) == expected, repr(text)
        for _, pattern in chunking._SENTENCE_ENDS:
            for match in pattern.finditer(text):
                if not match.lastindex:
                    routes["sure"] += 1
                else:
                    routes[
                        "judged and kept" if match.end() in expected else "judged and dropped"
                    ] += 1
    assert all(routes.values()), routes


def test_initials_precheck_lets_every_initials_token_through() -> None:
    tokens = [token for text in _random_texts() for token in text.split()]
    tokens += ["A", "A.B", "U.S.A", "é.Σ", "AB", "A.", ""]
    matching = [token for token in tokens if chunking._INITIALS.fullmatch(token)]
    assert matching and all(chunking._could_be_initials(token) for token in matching)
    assert not all(chunking._could_be_initials(token) for token in tokens)  # it does skip
