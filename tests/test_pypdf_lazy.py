"""LazyObjStmReader: the same objects, metadata and structure walk as pypdf's reader."""

from __future__ import annotations

import logging
from io import BytesIO
from pathlib import Path
from typing import Any

import pdf_factory
import pypdf
import pytest
from conftest import corpus_entry, corpus_manifest
from pypdf.generic import DecodedStreamObject, IndirectObject
from test_pypdf_plain import assert_same

import pypdf_lazy
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


GOTO = b"<< /S /GoTo /D [3 0 R /Fit] >>"
# Object streams whose index pypdf reads in its own way: an object listed twice (pypdf takes
# the first entry), numbers apart by \x0b (not whitespace to pypdf: it reads 0 and fails).
ODD_INDEXES = {
    "script_then_goto": {"extra": {6: pdf_factory.JS_ACTION}, "appended": ((6, GOTO),)},
    "goto_then_script": {"extra": {6: GOTO}, "appended": ((6, pdf_factory.JS_ACTION),)},
    "vertical_tab": {"extra": {6: pdf_factory.JS_ACTION}, "separator": b"\x0b"},
}


@pytest.mark.parametrize("name", sorted(ODD_INDEXES))
def test_odd_object_stream_indexes_read_as_pypdf_reads_them(name: str) -> None:
    data = pdf_factory.document(catalog=b"/OpenAction 6 0 R", in_objstm=(1, 6), **ODD_INDEXES[name])
    lazy, eager = (_walked(cls, BytesIO(data), None) for cls in (LazyObjStmReader, pypdf.PdfReader))
    assert lazy == eager


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
    tables = (reader.xref, reader.xref_objStm, reader.xref_free_entry)
    return (tables, key_orders(reader)), caplog.messages


def key_orders(reader: Any) -> tuple[list, list]:
    """Return the order of the xref's and free-entry tables' keys, generation by generation."""
    return (
        [(generation, list(table)) for generation, table in reader.xref.items()],
        [(generation, list(table)) for generation, table in reader.xref_free_entry.items()],
    )


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


# --- cross-reference streams, decoded column by column ---------------------------------------


def _open(reader_class, data: bytes) -> tuple[Any, ...]:
    """Open ``data``; return what the xref reading decided (or the error's type)."""
    try:
        reader = reader_class(BytesIO(data))
    except Exception as exc:  # the outcome under comparison
        return ("error", type(exc).__name__)
    return reader.xref, reader.xref_objStm, plain(reader.trailer)


@pytest.mark.parametrize("entry", corpus_manifest(), ids=lambda entry: entry["file"])
def test_open_builds_the_same_xref_as_pypdf_on_every_corpus_file(corpus, entry, caplog) -> None:
    data = (corpus / entry["file"]).read_bytes()
    with caplog.at_level(logging.ERROR):
        assert _open(LazyObjStmReader, data) == _open(pypdf.PdfReader, data)


def test_regular_xref_streams_skip_pypdfs_loop(corpus, monkeypatch) -> None:
    calls = []
    original = pypdf.PdfReader._read_xref_subsections

    def counted(self, *args):
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(pypdf.PdfReader, "_read_xref_subsections", counted)
    LazyObjStmReader(corpus / "clean/2023_Q1_MSFT.pdf")
    assert calls == []  # a pypdf upgrade that changes get_entry's closure fails here
    pypdf.PdfReader(corpus / "clean/2023_Q1_MSFT.pdf")
    assert calls  # and pypdf itself still goes through the method


SKELETON = {
    1: b"<< /Type /Catalog /Pages 2 0 R >>",
    2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
}


def skeleton(header: bytes) -> tuple[bytearray, dict[int, int]]:
    """Return a PDF's header and SKELETON's objects, and each object's offset."""
    out = bytearray(header)
    offsets = {}
    for num, body in SKELETON.items():
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    return out, offsets


def xref_stream_pdf(widths: list[int], index: list[int] | None, rows: list[tuple], cut: int = 0):
    """A PDF whose one xref stream has ``widths``, ``index`` and ``rows`` of field values
    (``"@n"`` = the offset of object n; a field of width 0 is not written), its data
    short by ``cut`` bytes."""
    out, offsets = skeleton(b"%PDF-1.7\n")
    xref_at = len(out)
    data = b""
    for row in rows:
        for value, width in zip(row, widths, strict=False):
            if isinstance(value, str):  # "@n": object n's offset
                value = offsets[int(value[1:])]
            data += value.to_bytes(width, "big") if width else b""
    data = data[: len(data) - cut]
    index_entry = b"/Index [%s] " % b" ".join(b"%d" % n for n in index) if index else b""
    w = b" ".join(b"%d" % n for n in widths)
    size = b"%d" % max(len(rows), 4)  # without /Index, the rows are objects 0..size-1
    out += b"9 0 obj\n<< /Type /XRef /Size %s /W [%s] %s/Root 1 0 R /Length %d >>\n" % (
        size,
        w,
        index_entry,
        len(data),
    )
    out += b"stream\n" + data + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


ROWS = [(0, 0, 255), (1, "@1", 0), (1, "@2", 0), (1, "@3", 0)]
XREF_STREAMS = {
    "plain": ([1, 4, 2], None, ROWS, 0),
    "wide_fields": ([1, 8, 3], None, ROWS, 0),
    "type_width_zero": ([0, 4, 1], [1, 3], [(9, "@1", 0), (9, "@2", 0), (9, "@3", 0)], 0),
    "generation_width_zero": ([1, 4, 0], [1, 3], [(1, "@1"), (1, "@2"), (1, "@3")], 0),
    "compressed_and_free": (
        [1, 4, 2],
        None,
        ROWS + [(2, 7, 0), (2, 7, 1), (0, 0, 0), (2, 8, 4)],
        0,
    ),
    "unknown_type": ([1, 4, 2], None, ROWS + [(2, 7, 0), (3, 5, 5), (2, 8, 4)], 0),
    "subsections_with_duplicates": (
        [1, 4, 2],
        [0, 4, 2, 2, 1, 1],
        ROWS + [(1, "@3", 0), (2, 7, 0), (1, "@1", 0)],
        0,
    ),
    "generations_and_overlaps": (
        [1, 4, 2],
        [1, 3, 1, 3],
        [(1, "@1", 0), (1, "@2", 5), (1, "@3", 0), (2, 7, 1), (1, "@2", 0), (1, "@3", 5)],
        0,
    ),
    "short_data": ([1, 4, 2], None, ROWS, 3),
    "width_over_eight": ([1, 9, 2], None, ROWS, 0),
    "four_widths": ([1, 4, 2, 1], None, [r + (0,) for r in ROWS], 0),
    "odd_index": ([1, 4, 2], [0, 4, 7], ROWS, 0),
}


IRREGULAR = {"short_data", "width_over_eight", "four_widths", "odd_index", "unknown_type"}


@pytest.mark.parametrize("name", sorted(XREF_STREAMS))
@pytest.mark.parametrize("strict", [False, True])
def test_xref_streams_read_the_same_as_pypdf(name, strict, caplog, monkeypatch) -> None:
    widths, index, rows, cut = XREF_STREAMS[name]
    data = xref_stream_pdf(widths, index, rows, cut)
    calls = []
    original = pypdf.PdfReader._read_xref_subsections
    monkeypatch.setattr(
        pypdf.PdfReader,
        "_read_xref_subsections",
        lambda self, *args: calls.append(1) or original(self, *args),
    )
    with caplog.at_level(logging.ERROR):
        lazy = _open(lambda stream: LazyObjStmReader(stream, strict=strict), data)
        if not strict:  # strict: pypdf's own loop (or its earlier refusal)
            assert bool(calls) == (name in IRREGULAR)  # decoded by columns, or not
        eager = _open(lambda stream: pypdf.PdfReader(stream, strict=strict), data)
    assert lazy == eager


# --- classic cross-reference tables, read with regexes --------------------------------------


def table_pdf(sections: list[tuple[int, list[bytes]]], eol: bytes = b" \n", **parts: bytes):
    """A PDF with one classic xref table of ``sections`` (first number, entries); an entry
    is b"n"/b"f" with ``@n`` for object n's offset, or raw bytes. ``parts`` replace the
    header (b"xref\\n"), the text before "trailer" (b"") and the trailer keyword."""
    out, offsets = skeleton(b"%PDF-1.4\n")
    xref_at = len(out)
    out += parts.get("head", b"xref\n")
    for first, entries in sections:
        out += b"%d %d\n" % (first, len(entries))
        for entry in entries:
            if entry.startswith(b"@"):  # "@n g": object n's offset, generation g
                num, _, generation = entry[1:].partition(b" ")
                entry = b"%010d %05d n" % (offsets[int(num)], int(generation or 0)) + eol
            out += entry
    out += parts.get("before_trailer", b"") + parts.get("trailer", b"trailer")
    out += b"\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


FREE = b"0000000000 65535 f \n"
TABLES = {
    "plain": ([(0, [FREE, b"@1", b"@2", b"@3"])], {}),
    "crlf": ([(0, [b"0000000000 65535 f\r\n", b"@1", b"@2", b"@3"])], {"eol": b"\r\n"}),
    "space_cr": ([(0, [b"0000000000 65535 f \r", b"@1", b"@2", b"@3"])], {"eol": b" \r"}),
    "cr_cr": ([(0, [b"0000000000 65535 f\r\r", b"@1", b"@2", b"@3"])], {"eol": b"\r\r"}),
    "two_subsections": ([(0, [FREE, b"@1"]), (2, [b"@2", b"@3"])], {}),
    "generations_after_the_first": ([(0, [FREE, b"@1 2", b"@2", b"@3 7"])], {}),
    "not_zero_indexed": ([(1, [b"@1", b"@2", b"@3"])], {}),
    "free_and_generations": (
        [(0, [FREE, b"@1", b"0000000000 00001 f \n", b"@3 5", b"0000000000 65535 f \n"])],
        {},
    ),
    "free_at_generation_0": ([(0, [FREE, b"@1", b"0000000000 00000 f \n", b"@3"])], {}),
    "no_free_head": ([(0, [b"@1", b"@1", b"@2", b"@3"])], {}),
    "overlapping_subsections": ([(0, [FREE, b"@1", b"@2"]), (1, [b"@3", b"@2", b"@3"])], {}),
    "empty_subsection": ([(0, [FREE, b"@1", b"@2", b"@3"]), (9, [])], {}),
    "tab_separated_header": ([(0, [FREE, b"@1", b"@2", b"@3"])], {"head": b"xref\r\n\t"}),
    # Irregular: pypdf's own method reads these.
    "crlf_after_space": ([(0, [b"0000000000 65535 f \r\n", b"@1"])], {"eol": b" \r\n"}),
    "nineteen_bytes": ([(0, [b"0000000000 65535 f\n", b"@1", b"@2", b"@3"])], {"eol": b"\n"}),
    "comment_before_trailer": ([(0, [FREE, b"@1", b"@2", b"@3"])], {"before_trailer": b"%c\n"}),
    "no_trailer": ([(0, [FREE, b"@1", b"@2", b"@3"])], {"trailer": b"trialer"}),
    "short_entry": ([(0, [FREE, b"@1", b"000000001 00000 n \n", b"@3"])], {}),
    "letters_in_entry": ([(0, [FREE, b"@1", b"00000000x9 00000 n \n", b"@3"])], {}),
    "unknown_kind": ([(0, [FREE, b"@1", b"0000000009 00000 q \n", b"@3"])], {}),
    "fewer_entries_than_declared": ([(0, [FREE, b"@1"]), (2, [b"@2"])], {"before_trailer": b""}),
    # Regular tables naming offsets where no header reads: pypdf's check drops them.
    "offset_into_the_header": ([(0, [FREE, b"@1", b"0000000003 00000 n \n", b"@3"])], {}),
    "offset_past_the_end": ([(0, [FREE, b"@1", b"9999999999 00000 n \n", b"@3 2"])], {}),
    "offset_inside_an_object": ([(0, [FREE, b"@1", b"@2", b"0000000013 00000 n \n"])], {}),
}
IRREGULAR_TABLES = {
    "crlf_after_space", "nineteen_bytes", "comment_before_trailer", "no_trailer",
    "short_entry", "letters_in_entry", "unknown_kind",
}  # fmt: skip


def count_calls(monkeypatch, method: str) -> list[int]:
    """Count the calls of pypdf's own ``PdfReader.<method>``; return the growing list."""
    calls: list[int] = []
    original = getattr(pypdf.PdfReader, method)
    monkeypatch.setattr(
        pypdf.PdfReader, method, lambda self, *args: calls.append(1) or original(self, *args)
    )
    return calls


def _table_outcome(reader_class, data: bytes, caplog) -> tuple[Any, ...]:
    """Open ``data``; return every table the xref reading fills (or the error) and the
    warnings logged."""
    caplog.clear()
    try:
        reader = reader_class(BytesIO(data))
    except Exception as exc:  # the outcome under comparison
        return ("error", type(exc).__name__, str(exc)), caplog.messages
    objects = [plain(reader.get_object(num)) for num in range(1, 4)]
    tables = (reader.xref, reader.xref_free_entry, reader.xref_index, plain(reader.trailer))
    return tables, key_orders(reader), objects, caplog.messages


@pytest.mark.parametrize("name", sorted(TABLES))
@pytest.mark.parametrize("strict", [False, True])
def test_xref_tables_read_the_same_as_pypdf(name, strict, caplog, monkeypatch) -> None:
    sections, parts = TABLES[name]
    data = table_pdf(sections, **parts)
    if name == "fewer_entries_than_declared":  # declares 3 entries, holds 2
        data = data.replace(b"0 2\n", b"0 3\n", 1)
    calls = count_calls(monkeypatch, "_read_standard_xref_table")
    caplog.set_level(logging.WARNING)
    lazy = _table_outcome(lambda stream: LazyObjStmReader(stream, strict=strict), data, caplog)
    regular = name not in IRREGULAR_TABLES and name != "fewer_entries_than_declared"
    assert bool(calls) == (strict or not regular)  # read by regexes, or by pypdf
    eager = _table_outcome(lambda stream: pypdf.PdfReader(stream, strict=strict), data, caplog)
    assert lazy == eager


def test_an_incremental_update_reads_the_same_as_pypdf(corpus, caplog) -> None:
    base = table_pdf([(0, [FREE, b"@1", b"@2", b"@3"])])
    body = b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] >>\nendobj\n"
    update_at = len(base)
    prev = int(base.rsplit(b"startxref\n", 1)[1].split()[0])
    xref_at = update_at + len(body)
    update = body + b"xref\n0 1\n0000000000 65535 f \n3 1\n%010d 00000 n \n" % update_at
    update += b"trailer\n<< /Size 4 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
        prev,
        xref_at,
    )
    data = base + update
    caplog.set_level(logging.WARNING)
    lazy = _table_outcome(LazyObjStmReader, data, caplog)
    assert lazy == _table_outcome(pypdf.PdfReader, data, caplog)
    assert lazy[2][2]["/MediaBox"] == [("NumberObject", "0")] * 2 + [("NumberObject", "100")] * 2


def test_a_classic_table_under_a_newer_xref_stream_reads_the_same_as_pypdf(caplog) -> None:
    # The stream (read first) makes xref[2] but no free-entry table for generation 2; the
    # older table's generation-2 entries then follow pypdf's rule for a table it did not make.
    base = table_pdf([(0, [FREE, b"@1", b"@2 2", b"@3"])])
    prev = int(base.rsplit(b"startxref\n", 1)[1].split()[0])
    object_3 = base.index(b"3 0 obj")
    xref_at = len(base)
    rows = [(1, object_3, 2), (1, xref_at, 0)]
    data = b"".join(b"%c%s%s" % (t, o.to_bytes(4, "big"), g.to_bytes(2, "big")) for t, o, g in rows)
    update = b"9 0 obj\n<< /Type /XRef /Size 10 /W [1 4 2] /Index [3 1 9 1] /Prev %d " % prev
    update += b"/Root 1 0 R /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (len(data), data)
    update += b"startxref\n%d\n%%%%EOF\n" % xref_at
    caplog.set_level(logging.WARNING)
    lazy = _table_outcome(LazyObjStmReader, base + update, caplog)
    assert lazy == _table_outcome(pypdf.PdfReader, base + update, caplog)
    assert 2 in lazy[0][0] and 2 not in lazy[0][1]  # xref[2] without xref_free_entry[2]


def test_well_formed_headers_are_checked_at_once_on_open(corpus, monkeypatch) -> None:
    calls: list[int] = []
    original = LazyObjStmReader.read_object_header
    monkeypatch.setattr(
        LazyObjStmReader,
        "read_object_header",
        lambda self, stream: calls.append(1) or original(self, stream),
    )
    reader = LazyObjStmReader(corpus / "clean/2022_Q3_INTC.pdf")
    assert len(reader.xref[0]) > 20_000
    assert len(calls) < 100  # pypdf's check called it for 23,698 entries before


def test_regular_xref_tables_skip_pypdfs_method(corpus, monkeypatch) -> None:
    calls = count_calls(monkeypatch, "_read_standard_xref_table")
    lazy = LazyObjStmReader(corpus / "clean/2022_Q3_INTC.pdf")
    assert calls == []
    eager = pypdf.PdfReader(corpus / "clean/2022_Q3_INTC.pdf")
    assert calls
    assert (lazy.xref, lazy.xref_free_entry) == (eager.xref, eager.xref_free_entry)
    assert len(lazy.xref[0]) > 20_000


# --- plain objects, parsed by pypdf_plain --------------------------------------------------


def _password(entry: dict) -> str | None:
    return entry.get("password")


def _walked(reader_class: type, path: Path, password: str | None) -> tuple[Any, ...]:
    """Open, decrypt and walk a file; return metadata, structure and every object (or the
    error's type)."""
    try:
        reader = reader_class(path)
        if reader.is_encrypted:
            reader.decrypt(password or "")
        metadata = pypdf_metadata(reader)
        walk = riskscan.scan_structure(reader)
        numbers = sorted({(g, n) for g, table in reader.xref.items() for n in table})[:3000]
        objects = []
        for generation, number in numbers:
            try:
                objects.append(plain(reader.get_object(IndirectObject(number, generation, reader))))
            except Exception as exc:  # noqa: BLE001 - the error itself is compared
                objects.append(("error", type(exc).__name__))
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return ("error", type(exc).__name__)
    return metadata, walk, objects


@pytest.mark.parametrize("entry", corpus_manifest(), ids=lambda entry: entry["file"])
def test_plain_objects_read_the_same_as_pypdf_on_every_corpus_file(corpus, entry, caplog):
    path, password = corpus / entry["file"], _password(entry)
    with caplog.at_level(logging.CRITICAL):
        assert _walked(LazyObjStmReader, path, password) == _walked(pypdf.PdfReader, path, password)


def test_plain_objects_skip_pypdfs_parser(corpus, monkeypatch) -> None:
    parsed = []
    original = pypdf_lazy.read_plain_object

    def counted(*args):
        found = original(*args)
        parsed.append(found is not None)
        return found

    monkeypatch.setattr(pypdf_lazy, "read_plain_object", counted)
    reader = LazyObjStmReader(corpus / "clean/freeculture.pdf")
    riskscan.scan_structure(reader)
    assert sum(parsed) > 300  # its 172 link annotations, their actions and its pages
    assert reader.get_object(3) is reader.get_object(3)  # cached, as pypdf caches


def test_object_stream_objects_skip_pypdfs_parser(corpus, monkeypatch) -> None:
    monkeypatch.setattr(pypdf_lazy, "read_object", lambda *args: pytest.fail("pypdf's parser"))
    reader = LazyObjStmReader(corpus / "clean/2023_Q1_MSFT.pdf")
    riskscan.scan_structure(reader)  # its catalog, pages and annotations: 107 objects


def test_a_dictionary_before_stream_in_an_object_stream_reads_as_pypdf_reads_it() -> None:
    # The next object of the stream starts with "stream": pypdf reads object 6 as a stream.
    data = pdf_factory.document(
        page=b"/Annots [6 0 R]",
        extra={6: b"<< /Type /Annot /Subtype /Link /Length 3 >>"},
        in_objstm=(6,),
        appended=((8, b"stream\nabc\nendstream"),),
    )
    lazy, eager = (cls(BytesIO(data)).get_object(6) for cls in (LazyObjStmReader, pypdf.PdfReader))
    assert type(lazy) is type(eager) is DecodedStreamObject
    assert (lazy, lazy.get_data()) == (eager, eager.get_data())


# Files encrypted with RC4 (V2) and AES-256 (V5), with and without a password.
ENCRYPTED = [
    "clean/2022_Q3_AMZN.pdf",
    "encrypted/libreoffice-writer-password.pdf",
    "encrypted/issue6010_1.pdf",
    "encrypted/issue21579.pdf",
    "encrypted/issue15893_reduced.pdf",
]


@pytest.mark.parametrize("name", ENCRYPTED)
def test_encrypted_files_plain_objects_are_decrypted_as_pypdf_decrypts_them(corpus, name):
    reader = LazyObjStmReader(corpus / name)
    reader.decrypt(corpus_entry(name).get("password") or "")
    plain_objects = 0
    for generation, table in reader.xref.items():
        for number in list(table) if generation != 65535 else []:
            reference = IndirectObject(number, generation, reader)
            ours = reader._plain_object(reference)
            if ours is not None:
                plain_objects += 1
                assert_same(ours, pypdf.PdfReader.get_object(reader, reference), f"{number}")
    assert plain_objects >= 4
