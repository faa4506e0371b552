"""LazyObjStmReader: the same objects, metadata and structure walk as pypdf's reader."""

from __future__ import annotations

import logging
from io import BytesIO
from pathlib import Path
from typing import Any

import pypdf
import pytest
from conftest import corpus_manifest
from hostile_pdfs import GENERATORS, build
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


# --- get_object: plain ordinary objects parsed fast, the same objects, state and warnings ---

ENTRIES = {entry["file"]: entry for entry in corpus_manifest()}
HOSTILE = [name for name in GENERATORS if name != "flate_bomb"]  # 1 GiB: pypdf reads it slowly


def assert_same_objects(fast: Any, slow: Any, fast_reader: Any, slow_reader: Any) -> None:
    """Assert equal objects: the same types at every level, values, key order, references."""
    pending, seen = [(fast, slow, ())], set()
    while pending:
        one, two, path = pending.pop()
        assert type(one) is type(two), path
        if (id(one), id(two)) in seen:  # pypdf links some objects to each other directly
            continue
        seen.add((id(one), id(two)))
        if isinstance(one, IndirectObject):
            assert (one.idnum, one.generation) == (two.idnum, two.generation), path
            assert (one.pdf, two.pdf) == (fast_reader, slow_reader), path
        elif isinstance(one, dict):
            assert [(type(k), k) for k in one] == [(type(k), k) for k in two], path
            assert getattr(one, "_data", None) == getattr(two, "_data", None), path
            # dict's own lookup: DictionaryObject's resolves references (reads more objects)
            pending += [(dict.get(one, k), dict.get(two, k), (*path, k)) for k in one]
        elif isinstance(one, list):
            assert len(one) == len(two), path
            pending += [
                (a, b, (*path, i))
                for i, (a, b) in enumerate(zip(list.__iter__(one), list.__iter__(two), strict=True))
            ]
        else:
            assert (one == two, repr(one)) == (True, repr(two)), path


def object_outcome(reader: Any, key: tuple[int, int], caplog: Any) -> tuple:
    """Return get_object's result (or error), the stream position after it, and warnings."""
    caplog.clear()
    try:
        value: Any = reader.get_object(IndirectObject(key[1], key[0], reader))
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        value = (type(exc), str(exc))
    return value, reader.stream.tell(), list(caplog.messages)


def open_pair(source: Any, password: str | None) -> tuple[Any, Any]:
    """Open the source with LazyObjStmReader and pypdf's reader, decrypted when encrypted."""
    readers = []
    for reader_class in (LazyObjStmReader, pypdf.PdfReader):
        reader = reader_class(BytesIO(source) if isinstance(source, bytes) else source)
        if reader.is_encrypted:
            reader.decrypt(password or "")
        readers.append(reader)
    return readers[0], readers[1]


def open_or_skip(source: Any, password: str | None) -> tuple[Any, Any]:
    """Open both readers, or skip a file pypdf cannot open (or decrypt)."""
    try:
        return open_pair(source, password)
    except Exception as exc:  # noqa: BLE001 - such files never reach get_object
        pytest.skip(f"pypdf cannot open it: {exc!r}")


def assert_same_reads(fast: Any, slow: Any, caplog: Any) -> None:
    """Read every object the xref names in both readers; assert the same outcomes."""
    for key in [(gen, num) for gen in sorted(slow.xref) for num in sorted(slow.xref[gen])]:
        one, two = object_outcome(fast, key, caplog), object_outcome(slow, key, caplog)
        assert_same_objects(one[0], two[0], fast, slow)
        assert one[1:] == two[1:], key
        reference = [getattr(getattr(obj, "indirect_reference", None), "idnum", None)
                     for obj in (one[0], two[0])]  # fmt: skip
        assert reference[0] == reference[1], key
    # pypdf parses a whole object stream at its first read, LazyObjStmReader each object when
    # read: the same objects and warnings, at other times and stream positions.
    warned: tuple[list[str], list[str]] = ([], [])
    for num in sorted(slow.xref_objStm):
        one, two = object_outcome(fast, (0, num), caplog), object_outcome(slow, (0, num), caplog)
        assert_same_objects(one[0], two[0], fast, slow)
        warned[0].extend(one[2])
        warned[1].extend(two[2])
    assert sorted(warned[0]) == sorted(warned[1])
    assert sorted(fast.resolved_objects) == sorted(slow.resolved_objects)
    assert (fast.xref, fast.xref_objStm) == (slow.xref, slow.xref_objStm)


class Counting(LazyObjStmReader):
    """LazyObjStmReader noting which objects the fast path read and which it left to pypdf."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.fast: list[int] = []
        self.fallback: list[int] = []
        super().__init__(*args, **kwargs)

    def _read_plain(self, ref: IndirectObject) -> Any:
        obj = super()._read_plain(ref)
        (self.fallback if obj is None else self.fast).append(ref.idnum)
        return obj


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_xref_object_reads_the_same(corpus, name, caplog) -> None:
    caplog.set_level(logging.WARNING)
    fast, slow = open_or_skip(corpus / name, ENTRIES[name].get("password"))
    assert_same_reads(fast, slow, caplog)


@pytest.mark.parametrize("name", ALL_FILES)
def test_structure_walk_is_the_same_on_every_file(corpus, name, caplog) -> None:
    caplog.set_level(logging.WARNING)
    fast, slow = open_or_skip(corpus / name, ENTRIES[name].get("password"))
    caplog.clear()
    walked = riskscan.scan_structure(fast), list(caplog.messages)
    caplog.clear()
    assert walked == (riskscan.scan_structure(slow), list(caplog.messages))


@pytest.mark.parametrize("name", HOSTILE)
def test_structure_walk_is_the_same_on_hostile_files(name, caplog) -> None:
    caplog.set_level(logging.WARNING)
    fast, slow = open_or_skip(GENERATORS[name](), None)
    caplog.clear()
    walked = riskscan.scan_structure(fast), list(caplog.messages)
    caplog.clear()
    assert walked == (riskscan.scan_structure(slow), list(caplog.messages))


def test_the_fast_path_reads_most_page_objects(corpus) -> None:
    reader = Counting(corpus / "clean/freeculture.pdf")
    list(reader.pages)
    assert len(reader.fast) > 300
    assert len(reader.fast) > 5 * len(reader.fallback)


def one_object(body: bytes, *, header: bytes = b"2 0 obj", end: bytes = b"endobj") -> bytes:
    """Return a document whose object 2 is ``body``, with its header and end replaced."""
    data = build({1: b"<< /Type /Catalog /Pages 3 0 R >>", 2: body, 3: b"<< /Count 0 >>"})
    at = data.index(b"2 0 obj")
    tail = data[at:].replace(b"endobj", end, 1)
    return data[:at] + header + tail[len(b"2 0 obj") :]


# Plain bodies, each with a trap pypdf's tokenizer has a rule for: they take the fast path.
FAST = [
    b"<< /A 1 /A 2 /B << /C [1] /C 2 >> /A /X >>", b"[+1 -.5 1. 007 -0 .5 +.5 -7 0.0 -3.]",
    b"[1 0 R 12 3 R 1234567 123456 R 12345678 1234567 R]", b"[1 2 3 R]",
    b"[12345678 12345678 R]", b"[1234567890123456789]", b"[5true false1/N]",
    b"<</Type/Page/MediaBox[0 0 612 792]/Kids[4 0 R 5 0 R]>>", b"[null null/A null]",
    b"42", b"/Name", b"7 0 R", b"true", b"null", b"[]", b"<<>>", b"[[[[]]]]", b"<</A<</B[]>>>>",
    b"5endobj", b"[1 0 R]endobj", b"[\t1\r\n2\r3 ]", b"/A1", b"<</A 1>>\r\n endobj",
]  # fmt: skip
# Bodies outside the subset, or bad headers and ends: pypdf's own method reads them.
FALLBACK = [
    b"<< /A#20B 1 >>", b"<< /A (string) >>", b"<< /A <414243> >>", b"<< /A 1 % comment\n>>",
    b"<< /Length 3 >>\nstream\nabc\nendstream", b"<< /A 123456789012345678901234567890 >>",
    b"[123456789 123456789 R]", b"[123456789 12345678 R]", b"[12345678901234567890]",
    b"[1 0 Rx]", b"[+1 0 R]", b"[1 0 R(]", b"<< /A >>", b"<< 1 2 >>",
    b"[1,5]", b"[1-2]", b"[.]", b"[1e5]", b"<< /A 1 >", b"[1 2>>", b"<< /A [1 >>", b"[falsx]",
    b"[nulll]", b"<< null 1 >>", b"[1\x0b2]", b"[1\x002]", b"[1\x0c2]", b"[/A\x80]", b"[/]",
    b"<< /A endobj", b"[" * 40 + b"]" * 40, b"[/" + b"N" * 128 + b"]", b"",
]  # fmt: skip
HEADERS_AND_ENDS = [
    {"header": b"9 0 obj"}, {"header": b"2 1 obj"}, {"end": b"endobx"}, {"header": b"2 0 obj%"},
]  # fmt: skip


def fast_and_slow(data: bytes, caplog: Any) -> tuple[Any, Any]:
    """Read object 2 with the counting fast reader and pypdf's; assert the same outcome."""
    fast, slow = Counting(BytesIO(data)), pypdf.PdfReader(BytesIO(data))
    one, two = object_outcome(fast, (0, 2), caplog), object_outcome(slow, (0, 2), caplog)
    assert_same_objects(one[0], two[0], fast, slow)
    assert one[1:] == two[1:]
    return fast, one


@pytest.mark.parametrize("body", FAST)
def test_plain_objects_take_the_fast_path(body, caplog) -> None:
    caplog.set_level(logging.WARNING)
    fast, _ = fast_and_slow(one_object(body), caplog)
    assert (fast.fast, fast.fallback) == ([2], [])


@pytest.mark.parametrize("body", FALLBACK)
def test_other_objects_go_to_pypdf(body, caplog) -> None:
    caplog.set_level(logging.WARNING)
    fast, _ = fast_and_slow(one_object(body), caplog)
    assert fast.fast == []


@pytest.mark.parametrize("change", HEADERS_AND_ENDS)
def test_bad_headers_and_ends_go_to_pypdf(change, caplog) -> None:
    caplog.set_level(logging.WARNING)
    fast, _ = fast_and_slow(one_object(b"<< /A 1 >>", **change), caplog)
    assert fast.fast == []


def test_duplicate_keys_warn_as_pypdf_does(caplog) -> None:
    caplog.set_level(logging.WARNING)
    fast, (value, _, warnings) = fast_and_slow(one_object(FAST[0]), caplog)
    assert fast.fast == [2]
    assert value == {"/A": 1, "/B": {"/C": [1]}}
    assert [w.split(" for key ")[1] for w in warnings] == ["/A", "/C", "/A"]


def test_limits_and_strict_mode_go_to_pypdf(caplog) -> None:
    caplog.set_level(logging.WARNING)
    data = one_object(b"[1 2 3]")
    with pypdf.apply_configuration(array_maximum_element_count=2):
        assert fast_and_slow(data, caplog)[0].fast == []
    strict = Counting(BytesIO(data), strict=True)
    assert strict.get_object(2) == [1, 2, 3]
    assert strict.fast == []


def test_encrypted_documents_go_to_pypdf(corpus) -> None:
    entry = ENTRIES["encrypted/libreoffice-writer-password.pdf"]
    reader = Counting(corpus / entry["file"])
    reader.decrypt(entry["password"])
    list(reader.pages)
    assert reader.fast == [] and reader.fallback == []
