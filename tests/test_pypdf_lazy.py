"""LazyObjStmReader: the same objects, metadata and structure walk as pypdf's reader."""

from __future__ import annotations

import logging
from io import BytesIO
from pathlib import Path
from typing import Any

import pypdf
import pytest
from conftest import corpus_manifest
from pypdf.generic import IndirectObject

import riskscan
from parse_child import configure_pypdf
from pdf_engines import pypdf_metadata
from pypdf_lazy import LazyObjStmReader

# Files with object streams (pdflatex writes them; so did MSFT's 10-Q filer).
FILES = [
    "clean/2023_Q1_MSFT.pdf",
    "clean/pdflatex-forms.pdf",
    "clean/pdflatex-outline.pdf",
    "clean/multicolumn.pdf",
]
FOUR_PAGES = "clean/pdflatex-4-pages.pdf"


def plain(obj: Any, depth: int = 0) -> Any:
    """Turn a pypdf object into comparable plain values (references by number)."""
    if isinstance(obj, IndirectObject):
        return ("ref", obj.idnum, obj.generation)
    if depth > 50:
        return "deep"
    if isinstance(obj, dict):
        return {str(key): plain(value, depth + 1) for key, value in obj.items()}
    if isinstance(obj, list):
        return [plain(value, depth + 1) for value in obj]
    return (type(obj).__name__, str(obj))


@pytest.fixture(autouse=True)
def _limits() -> None:
    configure_pypdf()  # the child's limits: 2023_Q1_MSFT.pdf needs the larger arrays


@pytest.mark.parametrize("name", FILES)
def test_every_object_stream_object_reads_the_same(corpus: Path, name: str) -> None:
    eager, lazy = pypdf.PdfReader(corpus / name), LazyObjStmReader(corpus / name)
    numbers = sorted(eager.xref_objStm)
    assert numbers  # the file has object streams
    for number in numbers:
        assert plain(lazy.get_object(number)) == plain(eager.get_object(number)), number


@pytest.mark.parametrize("name", FILES)
def test_metadata_and_structure_walk_are_the_same(corpus: Path, name: str) -> None:
    eager, lazy = pypdf.PdfReader(corpus / name), LazyObjStmReader(corpus / name)
    assert pypdf_metadata(lazy) == pypdf_metadata(eager)
    assert riskscan.scan_structure(lazy) == riskscan.scan_structure(eager)


def test_the_catalog_no_longer_parses_its_neighbours(corpus: Path) -> None:
    lazy = LazyObjStmReader(corpus / "clean/2023_Q1_MSFT.pdf")
    lazy.trailer["/Root"].get_object()
    parsed = sum(1 for number in lazy.xref_objStm if lazy.cache_get_indirect_object(0, number))
    assert parsed < len(lazy.xref_objStm) // 10


# --- read_object_header: the fast path leaves every byte where pypdf's method does ---------

ALL_FILES = [entry["file"] for entry in corpus_manifest()]
# Edge inputs: each goes to pypdf's method or must end exactly as it does.
HEADERS = [
    b"1 0 obj\n<<>>", b"12 3 obj <<", b"1 0 obj<<", b"007 000 obj\r\n[", b"1 0 obj\x0b<<",
    b"1 0 obj\x00\x00\f\t\r\n (", b"%comment\n1 0 obj\n<<", b"%comment\r1 0 obj <<",
    b"%comment that never ends", b"  1 0 obj <<", b"\r\n1 0 obj <<", b"\x001 0 obj <<",
    b"1  0 obj <<", b"1 0  obj <<", b"1\t0\tobj\t<<", b"1\n0\nobj\n<<", b"1\r\n0 obj <<",
    b"1\x0b0 obj <<", b"1 0\x0bobj <<", b"1\x000 obj <<", b"1\x0c0 obj <<",
    b"1" * 64 + b" 0 obj <<", b"1" * 65 + b" 0 obj <<", b"1 " + b"0" * 64 + b" obj <<",
    b"1 " + b"0" * 65 + b" obj <<", b"9" * 64 + b" " + b"9" * 64 + b" obj" + b" " * 60 + b"<",
    b"1 0 obX <<", b"1 0 ob", b"1 0 obj", b"1 0 obj   ", b"1 0 obj" + b" " * 300 + b"<<",
    b"1 0 R", b"1 0", b"1", b"", b" ", b"%", b"x 0 obj <<", b"-1 0 obj <<", b"+1 0 obj <<",
    b"1_0 0 obj <<", b"1 0_0 obj <<", b"1.0 0 obj <<", b"1 0 objstm <<", b"\xd9\xa3 0 obj <<",
    b"1 0 OBJ <<", b"1 0 obj\xa0<<", b"endobj\n1 0 obj <<",
]  # fmt: skip


class RecordingReader(pypdf.PdfReader):
    """pypdf's own reader, noting every offset it reads an object header at."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.header_offsets: list[int] = []
        super().__init__(*args, **kwargs)

    def read_object_header(self, stream: Any) -> tuple[int, int]:
        self.header_offsets.append(stream.tell())
        return super().read_object_header(stream)


def header_outcome(read: Any, data: bytes, offset: int, caplog: Any) -> tuple:
    """Return what reading a header at ``offset`` gives: value or error, position, warnings."""
    stream = BytesIO(data)
    stream.seek(offset)
    caplog.clear()
    try:
        value: Any = read(stream)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        value = (type(exc), str(exc))
    return value, stream.tell(), caplog.messages


def assert_same_headers(reader: Any, data: bytes, offsets: Any, caplog: Any) -> None:
    for offset in offsets:
        fast = header_outcome(reader.read_object_header, data, offset, caplog)
        slow = header_outcome(
            lambda s: pypdf.PdfReader.read_object_header(reader, s), data, offset, caplog
        )
        assert fast == slow, (offset, data[offset : offset + 40])


def open_outcome(reader_class: type, path: Path, caplog: Any) -> tuple:
    """Return a reader's xref tables after open (or its error), and the warnings logged."""
    caplog.clear()
    try:
        reader = reader_class(path)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return (type(exc), str(exc)), caplog.messages
    return (reader.xref, reader.xref_objStm, reader.xref_free_entry), caplog.messages


@pytest.mark.parametrize("name", ALL_FILES)
def test_headers_read_the_same_at_every_offset_pypdf_visits(corpus, name, caplog) -> None:
    caplog.set_level(logging.WARNING)
    data = (corpus / name).read_bytes()
    try:
        visited = RecordingReader(BytesIO(data)).header_offsets
    except Exception:  # noqa: BLE001 - a file pypdf cannot open still has its offsets
        visited = []
    offsets = {offset + shift for offset in visited for shift in (-2, -1, 0, 1, 2)}
    offsets = sorted(offset for offset in offsets if 0 <= offset <= len(data))
    offsets += range(max(0, len(data) - 300), len(data) + 1)  # end of file: trailer, EOF
    reader = LazyObjStmReader(corpus / FOUR_PAGES)
    assert_same_headers(reader, data, offsets, caplog)


@pytest.mark.parametrize("strict", [False, True])
def test_headers_read_the_same_on_edge_inputs(corpus, strict, caplog) -> None:
    caplog.set_level(logging.WARNING)
    reader = LazyObjStmReader(corpus / FOUR_PAGES)
    reader.strict = strict  # read_object_header's only use of the reader
    for header in HEADERS:
        for data in (header, b"xx" + header):
            assert_same_headers(reader, data, range(len(data) + 1), caplog)


def test_headers_read_the_same_at_every_byte_of_a_file(corpus, caplog) -> None:
    caplog.set_level(logging.WARNING)
    data = (corpus / "clean/2022_Q3_AMZN.pdf").read_bytes()
    reader = LazyObjStmReader(corpus / FOUR_PAGES)
    assert_same_headers(reader, data, range(0, len(data), 7), caplog)


@pytest.mark.parametrize("name", ALL_FILES)
def test_open_builds_the_same_xref_as_pypdf(corpus, name, caplog) -> None:
    caplog.set_level(logging.WARNING)
    eager = open_outcome(pypdf.PdfReader, corpus / name, caplog)
    lazy = open_outcome(LazyObjStmReader, corpus / name, caplog)
    assert lazy == eager


def test_well_formed_headers_skip_pypdfs_method(corpus, monkeypatch) -> None:
    reader = LazyObjStmReader(corpus / "clean/2022_Q3_INTC.pdf")
    number, offset = next(iter(reader.xref[0].items()))
    calls: list[Any] = []
    monkeypatch.setattr(pypdf.PdfReader, "read_object_header", lambda *args: calls.append(args))
    reader.stream.seek(offset)
    assert reader.read_object_header(reader.stream) == (number, 0)
    assert calls == []
