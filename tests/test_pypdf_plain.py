"""read_plain_object: the very objects pypdf's get_object builds, or None for pypdf to read."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pdf_factory
import pypdf
import pytest
from conftest import corpus_manifest
from pypdf._utils import read_non_whitespace
from pypdf.errors import LimitReachedError
from pypdf.generic import DictionaryObject, IndirectObject, StreamObject, read_object

from parse_child import configure_pypdf
from pypdf_plain import read_plain_object, read_plain_value

FILES = [e["file"] for e in corpus_manifest() if e["class"] in {"clean", "malformed", "image-only"}]
SAMPLE = 3000  # objects per file: 2022_Q3_INTC.pdf alone holds 23,698


@pytest.fixture(autouse=True)
def _limits() -> None:
    configure_pypdf()


class _Records(logging.Handler):
    """Collects what pypdf logs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def pypdf_log() -> Iterator[_Records]:
    handler = _Records()
    logger = logging.getLogger("pypdf")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def reader() -> pypdf.PdfReader:
    return pypdf.PdfReader(BytesIO(pdf_factory.plain()))


def attributes(obj: Any, top: bool) -> dict[str, Any]:
    """Return the instance attributes with their types (True == 1, so the type is kept); the
    cache sets indirect_reference on the top object."""
    found = {name: (type(value), value) for name, value in getattr(obj, "__dict__", {}).items()}
    if top:
        found.pop("indirect_reference", None)
    return found


def assert_same(ours: Any, theirs: Any, where: str = "object", top: bool = True) -> None:
    """Assert equal values with identical types and attributes at every level."""
    assert type(ours) is type(theirs), where
    if isinstance(theirs, IndirectObject):
        assert (ours.idnum, ours.generation) == (theirs.idnum, theirs.generation), where
        assert ours.pdf is theirs.pdf, where
        return
    assert attributes(ours, top) == attributes(theirs, top), where
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), where
        for (key, value), (their_key, their_value) in zip(
            dict.items(ours), dict.items(theirs), strict=True
        ):
            assert_same(key, their_key, f"{where} key {key}", top=False)
            assert_same(value, their_value, f"{where}[{key}]", top=False)
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        for index, (item, their_item) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(item, their_item, f"{where}[{index}]", top=False)
    elif isinstance(theirs, float):
        assert repr(float(ours)) == repr(float(theirs)), where
    else:
        assert ours == theirs, where


def open_reader(path: Path) -> pypdf.PdfReader | None:
    """Open a corpus file as the parse child does, or None if pypdf cannot open it."""
    try:
        reader = pypdf.PdfReader(path)
    except Exception:  # noqa: BLE001 - a damaged file pypdf refuses to open
        return None
    return reader if reader._encryption is None else None


def plain_entries(reader: pypdf.PdfReader) -> list[tuple[int, int, int]]:
    """Return (idnum, generation, offset) of the in-use objects outside object streams."""
    return [
        (idnum, generation, offset)
        for generation, table in reader.xref.items()
        if generation != 65535
        for idnum, offset in table.items()
        if idnum not in reader.xref_objStm
        and not reader.xref_free_entry.get(generation, {}).get(idnum, False)
    ][:SAMPLE]


def compare_file(path: Path, log: _Records) -> list[tuple[Any, Any]]:
    """Check every accepted object of a file against pypdf; return (ours, pypdf's) pairs."""
    reader = open_reader(path)
    if reader is None:  # nothing to compare; test_pypdf_lazy walks these files too
        with pytest.raises(Exception):  # noqa: B017, PT011 - pypdf's refusal, whatever its type
            opened = pypdf.PdfReader(path)
            if opened._encryption is not None:
                raise ValueError("encrypted: the plain path is never taken")
        return []
    data = path.read_bytes()
    pairs = []
    for idnum, generation, offset in plain_entries(reader):
        ours = read_plain_object(data, offset, idnum, generation, reader)
        log.records.clear()
        try:
            theirs = reader.get_object(IndirectObject(idnum, generation, reader))
        except Exception as error:  # noqa: BLE001 - only an accepted object must parse
            assert ours is None, f"{idnum} {generation}: pypdf raised {error!r}"
            continue
        if ours is not None:
            assert not log.records, f"{idnum} {generation}: pypdf warned {log.records}"
            assert_same(ours, theirs, f"{path.name} {idnum} {generation}")
        pairs.append((ours, theirs))
    return pairs


@pytest.mark.parametrize("name", FILES)
def test_corpus_objects_are_what_pypdf_reads(corpus: Path, name: str, pypdf_log: _Records) -> None:
    compare_file(corpus / name, pypdf_log)


@pytest.mark.parametrize("name", ["clean/freeculture.pdf", "clean/GeoTopo-komprimiert.pdf"])
def test_most_annotations_and_dictionaries_are_accepted(
    corpus: Path, name: str, pypdf_log: _Records
) -> None:
    pairs = compare_file(corpus / name, pypdf_log)
    dicts = [
        (ours, theirs)
        for ours, theirs in pairs
        if isinstance(theirs, DictionaryObject) and not isinstance(theirs, StreamObject)
    ]
    annots = [(ours, theirs) for ours, theirs in dicts if theirs.get("/Type") == "/Annot"]
    assert len(annots) > 150
    assert sum(ours is not None for ours, _ in annots) >= 0.95 * len(annots)
    assert sum(ours is not None for ours, _ in dicts) >= 0.8 * len(dicts)


def test_the_caller_caches_as_get_object_does(corpus: Path) -> None:
    path = corpus / "clean/freeculture.pdf"
    data, ours_reader, pypdf_reader = path.read_bytes(), open_reader(path), open_reader(path)
    for idnum, generation, offset in plain_entries(ours_reader)[:200]:
        ours = read_plain_object(data, offset, idnum, generation, ours_reader)
        if ours is None:
            continue
        # What the caller does instead of get_object, once it has checked the cache itself.
        ours_reader.cache_indirect_object(generation, idnum, ours)
        reference = IndirectObject(idnum, generation, ours_reader)
        assert ours_reader.get_object(reference) is ours
        theirs = pypdf_reader.get_object(IndirectObject(idnum, generation, pypdf_reader))
        assert ours.indirect_reference == reference
        assert theirs.indirect_reference == IndirectObject(idnum, generation, pypdf_reader)


# --- hand-made objects ---------------------------------------------------------------------

ANNOT = (
    b"3 0 obj<</H/I/Type/Annot/Rect[129.0 460.0 479.0 473.0]/Border[0 0 0]"
    b"/BS<</W 0/Type/Border/S/S>>/Subtype/Link/A 17 0 R>>\rendobj"
)
ANNOT_CRLF = (
    b"12 0 obj\r\n<<\r\n/Type /Annot\r\n/Subtype /Link\r\n/Border [ 0 0 0 ]\r\n/H /I\r\n"
    b"/C [ 1 0 0 ]\r\n/Rect [ 89.145 665.16 244.324 677.208 ]\r\n"
    b"/A << /S /GoTo /D (chapter.12) >>\r\n>>\r\nendobj"
)
PAGE = (
    b"5 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Rotate 0\n"
    b"/Resources << /Font << /F1 7 0 R /F2 8 0 R >> /ProcSet [/PDF /Text /ImageB]\n"
    b"/XObject << /Im1 9 0 R >> /ExtGState << /GS1 << /Type /ExtGState /CA 0.5 /SA true >> >> >>\n"
    b"/Contents [10 0 R 11 0 R] /Annots [12 0 R] >>\nendobj\n"
)


def obj(body: bytes, header: bytes = b"1 0 obj ") -> bytes:
    """Wrap a value in an indirect object."""
    return header + body + b"\nendobj\n"


def nested(depth: int) -> bytes:
    """Return arrays nested ``depth`` deep."""
    return b"[" * depth + b"]" * depth


ACCEPTED = [
    ANNOT,
    ANNOT_CRLF,
    PAGE,
    obj(b"[.5 -.5 +3 +.5 -0 0.0 -0.0 2. 007 -12 3.25 1234567890123456789012345678901234567890]"),
    obj(b"[123456789012345678.12345678901234567890 -.00000000000000000001]"),
    obj(b"[true false null]"),
    obj(b"<< /A true /B false /C null /D [null] >>"),
    obj(b"true"),
    obj(b"false"),
    obj(b"null"),
    obj(b"42"),
    obj(b"-1.5"),
    obj(b"7 0 R"),
    obj(b"/Name"),
    obj(b"(text)"),
    obj(b"<< >>"),
    obj(b"<<>>"),
    obj(b"[]"),
    obj(b"[[][]<<>>[[]]]"),
    obj(nested(32)),
    obj(b"[0 0 R 1 0 R 12345 65535 R]"),
    obj(b"[1 2 0 R 3]"),
    obj(b"[1\r\n0\tR]"),
    obj(b"[1 2]", b"7 3 obj "),
    obj(b"[()(a b)(chapter.12)(50%)(a\r\nb)(\t)]"),
    obj(b"(\xfe\xff\x00A\x00B)"),  # UTF-16BE BOM
    obj(b"(\xfe\xff\x00A\x00)"),  # UTF-16BE BOM, odd length
    obj(b"(\xff\xfeA\x00B\x00)"),  # UTF-16LE BOM
    obj(b"(\xef\xbb\xbfcaf\xc3\xa9)"),  # UTF-8 BOM
    obj(b"(\xef\xbb\xbf\xff)"),  # UTF-8 BOM, not UTF-8
    obj(b"(caf\xe9 \x80\x95\xa0\xad)"),  # PDFDocEncoding >= 0x80, some undefined
    obj(b"(\x18\x1f\x7f\x9f)"),
    obj(b"(\x00A)"),
    obj(b"(A\x00)"),
    obj(b"(\x00A\x00)"),
    obj(b"(a\x00b\x0bc)"),
    obj(b"[<48656c6c6f> <4 8 6> <> <FEFF0041> <fe\nff00\x0041>]"),
    obj(b"<</A<00>>>"),
    obj(b"<</A<>>>"),
    obj(b"[/A;B / /a.b-c_d*e /Caf\xc3\xa9 /A\x01 /A\x7f]"),
    obj(b"[/A/B(c)/D[/E]<</F/G>>]"),
    obj(b"[1\x002\x003]"),
    obj(b"<<\x00/A\x0c1\x00>>"),
    obj(b"[1\x0c2]"),
    b"1\t0\robj\n[1]\nendobj",
    b"\r\n1 0 obj [1] endobj",
    b"1 0 obj[1]endobj",
    b"1  0 \n obj [1] endobj",
    b"001 0 obj [1] endobj",
    # No token but a reference must end at a delimiter: pypdf reads these the same way.
    obj(b"[1.123456789012345678901 -1234567890123456789012345678901234567.9]"),  # 40 bytes
    obj(b"[1 0 R1 2 0 R/A 3 0 R(s)4 0 R<41>5 0 R[6 0 R]]"),
    obj(b"42endobj"),
    b"1 0 obj (s)endobj",
    b"1 0 obj <</A 1>>endobj",
    obj(b"[5true 6/A 7(s)8[9]/B(c)/D<41>/E[]/F<<>>]"),
    obj(b"[truefalse nullnull true5 false/A null(s)]"),
    obj(b"<</A null/B true/C false>>"),
    obj(b"[/A\x00 /B\x00\x00/C]"),  # pypdf reads \x00 as part of a name
    obj(b"<</A\x00 1>>"),
    b"1 0 obj /A\nendobj",
    obj(b"[5 6 7 R]"),  # 5, then 6 7 R
    obj(b"[1.5 2.5 -3.25 +.5 .5 -.5 2.]"),  # arrays of numbers are built in bulk
    obj(b"[1 -2 +3 007 -0]"),
    obj(b"[\t1\r\n2.5\x0c]"),
    obj(b"<</A[1 2]/B[3.5]/C[[1][2.5 3]]>>"),
]


def pypdf_reads(reader: pypdf.PdfReader, data: bytes) -> tuple[tuple[int, int], Any]:
    """Parse as get_object does after seeking to the object: header, then read_object."""
    stream = BytesIO(data)
    header = reader.read_object_header(stream)
    return header, read_object(stream, reader)


@pytest.mark.parametrize("data", ACCEPTED)
def test_accepted_objects_are_what_pypdf_reads(
    reader: pypdf.PdfReader, data: bytes, pypdf_log: _Records
) -> None:
    (idnum, generation), theirs = pypdf_reads(reader, data)
    assert not pypdf_log.records
    ours = read_plain_object(data, 0, idnum, generation, reader)
    assert ours is not None
    assert_same(ours, theirs)


# Random objects from pieces pypdf reads in odd ways, joined by odd whitespace (or none).
PIECES = [
    *(b"/A", b"/", b"/A\x00B", b"/\xc3\xa9", b"/\xe9", b"/A#20", b"0", b"-3", b"+4", b".5", b"1."),
    *(b"1.2.3", b"1,2", b"1e5", b"1 0 R", b"1  0  R", b"+1 0 R", b"1 0 R5", b"1 0 Rx", b"R"),
    *(b"12345678901234567890123456789012345678901", b"true", b"fals", b"null", b"nul", b"endobj"),
    *(b"(x)", b"()", b"(\xfe\xff\x00A)", b"(\x00)", b"(a\\)b)", b"(%)", b"<41>", b"<>", b"<4G>"),
    *(b"[1 2.5]", b"[1.2.3 4]", b"[1\x0b2]", b"<</K 1/K 2>>", b"<</K>>", b"<<1 2>>", b"%c\n"),
    *(b"<", b">", b"(", b")", b"{", b"[", b"]", b"<<", b">>"),
]
GAPS = [b"", b"", b" ", b"\n", b"\r\n", b"\x00", b"\t", b"\x0c", b"\x0b"]


def random_value(rng: random.Random, depth: int = 0) -> bytes:
    """Return a random array, dictionary or piece."""
    gap = rng.choice(GAPS)
    kind = rng.random() if depth < 4 else 1.0
    if kind < 0.25:
        return (
            b"[" + gap.join(random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))) + b"]"
        )
    if kind < 0.5:
        entries = [
            rng.choice([b"/K", b"/A", b"/B", b"1"])
            + rng.choice(GAPS)
            + random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 4))
        ]
        return b"<<" + gap + gap.join(entries) + rng.choice(GAPS) + b">>"
    return rng.choice(PIECES)


def test_random_objects_are_what_pypdf_reads_or_refused(
    reader: pypdf.PdfReader, pypdf_log: _Records
) -> None:
    rng, accepted = random.Random(7), 0
    for _ in range(3000):
        value, gap = random_value(rng), rng.choice(GAPS)
        data = (
            b"1 0 obj" + rng.choice(GAPS) + value + gap + b"endobj" + rng.choice([b"", b" stream"])
        )
        ours = read_plain_object(data, 0, 1, 0, reader)
        if ours is None:
            continue
        accepted += 1
        pypdf_log.records.clear()
        header, theirs = pypdf_reads(reader, data)
        assert header == (1, 0) and not pypdf_log.records, data
        assert_same(ours, theirs, repr(data))
    assert accepted > 500


def test_the_object_may_start_inside_the_data(reader: pypdf.PdfReader) -> None:
    data = b"%PDF-1.7\n" + ANNOT + b"\n" + ANNOT_CRLF
    ours = read_plain_object(data, data.index(b"12 0 obj"), 12, 0, reader)
    assert_same(ours, pypdf_reads(reader, ANNOT_CRLF)[1])
    annot = read_plain_object(data, data.index(b"3 0 obj"), 3, 0, reader)
    assert annot.raw_get("/A").idnum == 17


REFUSED = [
    obj(b"/A#20B"),  # pypdf decodes # escapes
    obj(b"<< /A#42 1 >>"),
    obj(b"(a\\)b)"),  # backslash
    obj(b"(a\\nb)"),
    obj(b"(a(b)c)"),  # nested parentheses
    obj(b"[1 %comment\n 2]"),
    obj(b"%comment\n[1]"),
    obj(b"<< /A 1 >> %c"),
    b"%c\n1 0 obj [1] endobj",
    b"1 0 obj\n<< /Length 3 >>\nstream\nabc\nendstream\nendobj",  # a stream
    b"1 0 obj << /A 1 >>",  # no endobj
    b"1 0 obj << /A 1 >> endob",
    b"1 0 obj [1] [2] endobj",  # two values
    b"1 0 obj endobj",  # no value: pypdf reads null
    b"1 0obj [1] endobj",
    b"1 0 ob [1] endobj",
    b"1 0 objx endobj",
    b"1 0 R [1] endobj",
    b"1 obj [1] endobj",
    b"+1 0 obj [1] endobj",
    obj(nested(33)),  # too deep
    obj(b"[1.2.3]"),  # pypdf: 0.0 with a warning
    obj(b"[--1]"),
    obj(b"[.]"),
    obj(b"[-]"),
    obj(b"[+]"),
    obj(b"[1,2]"),  # "+-." is a range in pypdf's number pattern: comma included
    obj(b"[1-2]"),
    obj(b"[1e5]"),
    obj(b"[1.5.]"),
    obj(b"[1.2.3 4]"),  # as many dots as numbers
    obj(b"[1 2..]"),
    obj(b"[1 2,5]"),
    obj(b"[1 - 2]"),
    obj(b"[1 12345678901234567890123456789012345678901]"),
    obj(b"[1.5 2 1.23456789012345678901234567890123456789012]"),
    obj(b"[12345678901234567890123456789012345678901]"),  # 41 digits
    obj(b"<< /A 1 /A 2 >>"),  # duplicate key: pypdf warns, keeps the first
    obj(b"<< 1 2 >>"),  # non-name keys
    obj(b"<< (a) 1 >>"),
    obj(b"<< null 1 >>"),  # pypdf ends the dictionary at a null key
    obj(b"<< true 1 >>"),
    obj(b"<< [/A] 1 >>"),
    obj(b"<< /A >>"),  # a key without value
    obj(b"<< /A 1 /B >>"),
    b"1 0 obj << /A 1 endobj",  # unterminated
    b"1 0 obj << /A [1 2 >> endobj",
    b"1 0 obj [1 2 endobj",
    b"1 0 obj (abc endobj",
    b"1 0 obj <414 endobj",
    obj(b"<< /A 1 >"),
    obj(b"<< /A 1 >>>"),
    obj(b"[1]]"),
    obj(b"[1 >>"),
    obj(b"<< /A 1 ]"),
    obj(b"[R]"),  # R without numbers
    obj(b"[0 R]"),
    obj(b"<< /A R >>"),
    obj(b"[1 0 Rx]"),
    obj(b"[1 0 R\x0b]"),
    obj(b"[1          0          R]"),  # beyond pypdf's 20-byte peek
    obj(b"[+1 0 R]"),  # pypdf reads a signed reference
    obj(b"[-1 0 R]"),
    obj(b"[1 0\x00R]"),
    obj(b"[1.0 0 R]"),
    b"1 0 obj 17 0 Rendobj",  # pypdf reads 17: "R" is followed by a letter
    b"1 0 obj [17 0 Rendobj",
    obj(b"[17 0 Ra]"),
    obj(b"[1\x0b2]"),  # \x0b is whitespace to some of pypdf's loops, not to others
    obj(b"<<\x0b/A 1>>"),
    obj(b"[/A\x0b]"),
    obj(b"[/\xe9t\xe9]"),  # not UTF-8: pypdf tries gbk, then latin1
    obj(b"[/\x81\x40]"),
    obj(b"[{1}]"),
    obj(b"[truex]"),
    obj(b"[nul]"),
    obj(b"[fals]"),
    obj(b"[endobj]"),
    obj(b"<48 6G>"),
    obj(b"<48\x0b65>"),
    obj(b"[" + b"1 " * 40_000 + b"]"),  # over the 64 KB window
    b"1 0 obj /Aendobj",  # pypdf reads the name /Aendobj
    b"1 0 obj /endobj endobj",
    b"1 0 obj /A\x00endobj",
    b"1 0 obj << /Xendobj 1 >> endobj",
    b"1 0 obj (an endobj inside) endobj",
    obj(b"[/" + b"N" * 2000 + b"]"),  # pypdf raises on names past 4,080 bytes
    obj(b"<< /A 1 /" + b"N" * 5000 + b" 2 >>"),
]


@pytest.mark.parametrize("data", REFUSED)
def test_refused_objects(reader: pypdf.PdfReader, data: bytes) -> None:
    assert read_plain_object(data, 0, 1, 0, reader) is None


@pytest.mark.parametrize(("idnum", "generation"), [(2, 0), (1, 1), (0, 0), (11, 0), (10, 0)])
def test_the_header_must_name_the_object(
    reader: pypdf.PdfReader, idnum: int, generation: int
) -> None:
    assert read_plain_object(obj(b"[1]"), 0, idnum, generation, reader) is None


def test_names_are_refused_long_before_pypdf_raises(reader: pypdf.PdfReader) -> None:
    data = obj(b"/" + b"N" * 1999)
    assert_same(read_plain_object(data, 0, 1, 0, reader), pypdf_reads(reader, data)[1])
    with pytest.raises(LimitReachedError):
        pypdf_reads(reader, obj(b"/" + b"N" * 4100))


def test_truncated_data_is_refused(reader: pypdf.PdfReader) -> None:
    for cut in range(len(ANNOT_CRLF)):
        assert read_plain_object(ANNOT_CRLF[:cut], 0, 12, 0, reader) is None, cut
    assert read_plain_object(ANNOT_CRLF, 0, 12, 0, reader) is not None


def test_offsets_outside_the_data_are_refused(reader: pypdf.PdfReader) -> None:
    data = b"x" + ANNOT
    assert read_plain_object(data, -1, 3, 0, reader) is None
    assert read_plain_object(data, len(data) + 5, 3, 0, reader) is None
    assert read_plain_object(data, 1, 3, 0, reader) is not None


def test_strict_readers_keep_their_header_warning(pypdf_log: _Records) -> None:
    strict = pypdf.PdfReader(BytesIO(pdf_factory.plain()), strict=True)
    data = b"1  0 obj [1] endobj"
    pypdf_reads(strict, data)
    assert "Superfluous whitespace" in pypdf_log.records[0].getMessage()
    assert read_plain_object(data, 0, 1, 0, strict) is None
    assert read_plain_object(b"1 0 obj [1] endobj", 0, 1, 0, strict) == [1]


@pytest.mark.parametrize(
    ("limit", "data"),
    [
        ("array_maximum_element_count", obj(b"[1 2 3]")),
        ("array_maximum_element_count", obj(b"<< /A [1 2 3] >>")),
        ("array_maximum_element_count", obj(b"[/A /B 1]")),
        ("dictionary_maximum_element_count", obj(b"<< /A 1 /B 2 /C 3 >>")),
        ("dictionary_maximum_element_count", obj(b"[<< /A 1 /B 2 /C 3 >>]")),
    ],
)
def test_pypdf_limits_are_left_to_pypdf(reader: pypdf.PdfReader, limit: str, data: bytes) -> None:
    with pypdf.apply_configuration(**{limit: 2}):
        with pytest.raises(LimitReachedError):
            pypdf_reads(reader, data)
        assert read_plain_object(data, 0, 1, 0, reader) is None
    with pypdf.apply_configuration(**{limit: 3}):
        assert_same(read_plain_object(data, 0, 1, 0, reader), pypdf_reads(reader, data)[1])


# --- objects of object streams: a dictionary or array between two offsets -------------------


def pypdf_reads_value(reader: pypdf.PdfReader, data: bytes, start: int) -> Any:
    """Parse as the object stream reader does: skip whitespace, then read_object."""
    stream = BytesIO(data)
    stream.seek(start)
    read_non_whitespace(stream)
    stream.seek(-1, 1)
    return read_object(stream, reader)


NEXT_OBJECT = b"<< /Type /Next >>"
VALUES = [
    b"<</H/I/Type/Annot/Rect[129.0 460.0 479.0 473.0]/Border[0 0 0]/A 17 0 R>>",
    ANNOT_CRLF[ANNOT_CRLF.index(b"<<") : ANNOT_CRLF.index(b"endobj")],
    PAGE[PAGE.index(b"<<") : PAGE.index(b"endobj")],
    b"  \r\n<< /A [1 2.5 (s) <41>] /B << /C null >> >>\n\n",
    b"[1 0 R 2 0 R /Fit]",
    b"[0 0 612 792]",
    b"[]",
    b"<<>>",
    b"[[[1]] << /A [true false] >>]",
]


@pytest.mark.parametrize("value", VALUES)
def test_object_stream_values_are_what_pypdf_reads(
    reader: pypdf.PdfReader, value: bytes, pypdf_log: _Records
) -> None:
    data = b"7 0 8 %d " % len(value) + value + NEXT_OBJECT
    start = data.index(value)
    theirs = pypdf_reads_value(reader, data, start)
    assert not pypdf_log.records
    assert_same(read_plain_value(data, start, start + len(value), reader), theirs)


# (value, what follows its segment): each refused, so pypdf reads it.
REFUSED_VALUES = [
    (b"42", b" 0 R"),  # not a container: pypdf may read on into the next object
    (b"/Name", b"x"),
    (b"(s)", b""),
    (b"7 0 R", b""),
    (b"true", b""),
    (b"<< /Length 3 >>", b"stream\nabc\nendstream"),  # pypdf reads a stream
    (b"<< /Length 3 >>\n", b"\x00 stream\r\nabc\nendstream"),
    (b"<< /A 1 >> x", b""),  # more than the value
    (b"[1 2] [3]", b""),
    (b"<< /A 1", b" >>"),  # the value runs into the next object
    (b"[1 2", b"]"),
    (b"%c\n[1]", b""),
    (b"[" + b"1 " * 40_000 + b"]", b""),  # over the 64 KB window
    (b"[/A#20]", b""),
]


@pytest.mark.parametrize(("value", "after"), REFUSED_VALUES)
def test_refused_object_stream_values(reader: pypdf.PdfReader, value: bytes, after: bytes) -> None:
    data = value + after
    assert read_plain_value(data, 0, len(value), reader) is None


def test_random_object_stream_values_are_what_pypdf_reads_or_refused(
    reader: pypdf.PdfReader, pypdf_log: _Records
) -> None:
    rng, accepted = random.Random(11), 0
    for _ in range(3000):
        value = rng.choice(GAPS) + random_value(rng) + rng.choice(GAPS)
        data = value + rng.choice([b"", b"stream\nx", b" \nstream", b"<< /B 2 >>", b"]", b">>"])
        ours = read_plain_value(data, 0, len(value), reader)
        if ours is None:
            continue
        accepted += 1
        pypdf_log.records.clear()
        theirs = pypdf_reads_value(reader, data, 0)
        assert not pypdf_log.records, data
        assert_same(ours, theirs, repr(data))
    assert accepted > 200
