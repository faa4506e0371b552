"""A pypdf reader that opens faster and parses only the objects asked for out of an
object stream.

pypdf 7 parses every object of an object stream the first time any one of them is read.
Real 10-Q filings keep the catalog in a stream next to a 109,548-element /Dests array, so
reading the catalog costs 0.5-0.9 s of pure Python (2023_Q1_MSFT.pdf) although neither the
metadata nor the security structure walk ever looks at /Dests. ``LazyObjStmReader`` reads
the stream's index once and parses just the requested object, with ``pypdf_plain`` when it
is a plain dictionary or array (the 107 objects of 2023_Q1_MSFT.pdf's structure walk: 18.7
-> 10.9 ms), else with pypdf's ``read_object``. Anything irregular in a stream
(a bad header, an offset out of order, an object listed twice, an object that does not
parse) goes back to pypdf's own method, so hostile files meet exactly pypdf's checks,
warnings and errors.

Opening a file, pypdf (non-strict) reads the header ``N G obj`` of every object the xref
names, byte by byte, and drops the entries whose header does not read: 24,000 headers and
80 ms on 2022_Q3_INTC.pdf. ``read_object_header`` matches a well-formed header with one
regex and leaves the stream where pypdf would; any other bytes (a comment, other
whitespace, an overlong number, end of file) go to pypdf's method, in the same way. Still
one Python call per entry: so before pypdf's check, the xref's well-formed headers are
matched in one ``map`` and set aside, pypdf checks only the others (with its warnings and
deletions), and the tables are put back in their order (INTC's open: 383 M -> 309 M
instructions, callgrind).

A cross-reference stream's entries are read by pypdf with three Python calls each (56,175
entries, ~60 ms on 2023_Q1_MSFT.pdf). ``_read_xref_subsections`` decodes a regular stream
(three widths of 0-8 bytes, data for every entry, types 0-2 only) column by column with byte
slicing, then fills ``xref``/``xref_objStm`` by pypdf's rules. It takes the widths and data
from pypdf's ``get_entry`` closure (pypdf is pinned; a test fails if the closure changes);
anything else is pypdf's own loop.

A classic xref table is read by pypdf 20 bytes at a time with a split and two ints per entry
(23,699 entries, ~50 ms on 2022_Q3_INTC.pdf). ``_read_standard_xref_table`` checks a regular
table (subsections of exact 20-byte entries, whitespace, "trailer") column by column with
byte slices, splits it once and fills the tables by pypdf's rules; any oddity (comments, 19-
or 21-byte entries, strict mode) is pypdf's own method. Entries after a subsection's first,
all at generation 0 and none known yet (the usual case), fill the tables in three bulk
dict updates instead of a Python loop (INTC's open: 25.5 -> 21.1 ms).

Every other object, outside object streams, is parsed by ``pypdf_plain`` when its bytes are
in that module's plain subset (page and annotation dictionaries, actions, the catalog):
~3.5x faster than pypdf's ``read_object``, and the structure walk of freeculture.pdf /
GeoTopo-komprimiert.pdf drops from 123 / 151 ms to 52 / 55 ms. An encrypted file's object
is then decrypted by pypdf's own ``decrypt_object``, as its ``get_object`` does after
``read_object`` (2022_Q3_AMZN.pdf, RC4 with an empty password: walk 32.6 -> 15.2 ms). What
it refuses, cached objects and free entries are pypdf's.
"""

from __future__ import annotations

import operator
import re
from io import BytesIO
from itertools import compress, repeat
from typing import Any

from pypdf import PdfReader
from pypdf._utils import WHITESPACES_AS_BYTES, StreamType, read_non_whitespace
from pypdf.errors import PdfStreamError
from pypdf.generic import IndirectObject, NumberObject, PdfObject, read_object

from pypdf_plain import read_plain_object, read_plain_value

# pypdf's header reading, when it meets no oddity: each number is at most
# _MAXIMUM_PART_LENGTH non-whitespace bytes (one more is "exceeds maximum length") and ends
# at the one whitespace byte it consumes; "obj" is read as 3 bytes, then every byte of
# WHITESPACES (not bytes.isspace(): no \x0b) is skipped, to stop on the first other byte.
_PART = IndirectObject._MAXIMUM_PART_LENGTH
_HEADER_PATTERN = rb"(\d{1,%d}) (\d{1,%d}) obj[%s]*" % (
    _PART,
    _PART,
    re.escape(WHITESPACES_AS_BYTES),
)
_HEADER = re.compile(_HEADER_PATTERN)
# Enough for both numbers at their limit, " obj" and some whitespace; a match reaching the
# window's end (more whitespace, or the end of the file) goes to pypdf's method.
_WINDOW = 2 * _PART + 6 + 64
# The same header, matched in the file's bytes up to the window's end: the lookahead asks
# for a byte after the whitespace, as the match above must not reach the window's end.
_HEADER_IN_WINDOW = re.compile(_HEADER_PATTERN + rb"(?=[^%s])" % re.escape(WHITESPACES_AS_BYTES))
_FREE_GENERATION = 65535  # pypdf's check skips this table
# A classic xref table as pypdf reads it when it meets no oddity: "xref" (the "x" is already
# read), whitespace, then subsections "first count" of 20-byte entries "oooooooooo ggggg n"
# ending in " \r", " \n", "\r\n" or "\r\r", each followed by whitespace and the next
# subsection or "trailer". Comments, 19- or 21-byte entries, signs and the like go to
# pypdf's method.
_WS = b"[%s]" % re.escape(WHITESPACES_AS_BYTES)
_TABLE_START = re.compile(rb"ref%b*" % _WS)
_SUBSECTION = re.compile(rb"(\d{1,10})%b+(\d{1,10})%b+" % (_WS, _WS))
_ENTRY_SIZE = 20
_DIGIT_COLUMNS = (*range(10), *range(11, 16))
_AFTER_ENTRIES = re.compile(rb"%b*(trailer)?" % _WS)


class LazyObjStmReader(PdfReader):
    """``PdfReader`` reading object headers fast and object streams lazily (same objects)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Per object stream: its data, and where each of its objects starts and ends.
        self._objstm_index: dict[int, tuple[bytes, dict[int, tuple[int, int]]] | None] = {}
        self._data: bytes | None = None  # the file's bytes (xref tables, pypdf_plain)
        # Per generation: the table as read, and the numbers whose headers were matched.
        self._checked: dict[int, tuple[dict[int, Any], set[int]]] = {}
        super().__init__(*args, **kwargs)

    def get_object(self, indirect_reference: int | IndirectObject) -> PdfObject | None:
        """Return an object as pypdf does; a plain one outside object streams is parsed by
        ``pypdf_plain`` (what it refuses, and everything else, is pypdf's own reading)."""
        ref = indirect_reference
        if isinstance(ref, int):
            ref = IndirectObject(ref, 0, self)
        obj = self._plain_object(ref)
        if obj is None:
            return super().get_object(indirect_reference)
        return self.cache_indirect_object(ref.generation, ref.idnum, obj)

    def _plain_object(self, ref: IndirectObject) -> PdfObject | None:
        """Parse an uncached, uncompressed, in-use object and decrypt it as pypdf does, or
        return None."""
        generation, idnum = ref.generation, ref.idnum
        if self._data is None:
            return None
        if (generation, idnum) in self.resolved_objects or idnum in self.xref_objStm:
            return None
        offset = self.xref.get(generation, {}).get(idnum)
        if not isinstance(offset, int) or self.xref_free_entry.get(generation, {}).get(idnum):
            return None
        obj = read_plain_object(self._data, offset, idnum, generation, self)
        # pypdf's get_object, after read_object (the override is on while it reads /Encrypt).
        if obj is None or self._override_encryption or self._encryption is None:
            return obj
        if not self._encryption.is_decrypted():
            return None  # pypdf raises FileNotDecryptedError
        return self._encryption.decrypt_object(obj, idnum, generation, strict=self.strict)

    def read(self, stream: StreamType) -> None:
        """Read the file's structure as pypdf does, keeping its bytes at hand."""
        # A BytesIO made from bytes (pypdf reads a path into one) shares them: no copy.
        self._data = stream.getvalue() if isinstance(stream, BytesIO) else None
        try:
            super().read(stream)
        finally:
            self._put_back_checked()

    def _read_xref_tables_and_trailers(
        self, stream: StreamType, startxref: int | None, xref_issue_nr: int
    ) -> None:
        """Read the tables as pypdf does, then set aside the entries whose header reads."""
        super()._read_xref_tables_and_trailers(stream, startxref, xref_issue_nr)
        # pypdf's first loop (a table not starting at 0) renumbers entries: leave it all.
        if self.strict or self.xref_index or self._data is None:
            return
        for generation, entries in self.xref.items():
            if generation != _FREE_GENERATION:
                matched = _well_formed(self._data, entries)
                self._checked[generation] = (entries, matched)
                self.xref[generation] = {n: o for n, o in entries.items() if n not in matched}

    def _put_back_checked(self) -> None:
        """Return the set-aside entries, in the table's order, without those pypdf dropped."""
        for generation, (entries, matched) in self._checked.items():
            kept = self.xref.get(generation, {})
            self.xref[generation] = {
                n: offset for n, offset in entries.items() if n in matched or n in kept
            }
        self._checked = {}

    def read_object_header(self, stream: StreamType) -> tuple[int, int]:
        """Read ``N G obj`` as pypdf does, with one regex match when it is well formed."""
        start = stream.tell()
        window = stream.read(_WINDOW)
        match = _HEADER.match(window)
        if match is None or match.end() == len(window):
            stream.seek(start)
            return super().read_object_header(stream)
        stream.seek(start + match.end())
        return int(match[1]), int(match[2])

    def _read_standard_xref_table(self, stream: StreamType) -> None:
        """Read a classic xref table as pypdf does, in bulk when it is regular."""
        start = stream.tell()
        table = None if self.strict or self._data is None else _regular_table(self._data, start)
        if table is None:
            return super()._read_standard_xref_table(stream)
        subsections, end = table
        if subsections[0][0] != 0:
            self.xref_index = subsections[0][0]
        for first, entries in subsections:
            self._add_table_entries(first, entries)
        stream.seek(end)
        return None

    def _add_table_entries(self, first: int, entries: bytes) -> None:
        """Record one subsection's entries by pypdf's rules (the newest table read wins)."""
        numbers = range(first, first + len(entries) // _ENTRY_SIZE)
        offsets = list(map(int, entries.split()[0::3]))
        free_flags = list(map(operator.eq, entries[17::_ENTRY_SIZE], repeat(ord("f"))))
        generations = _generations(entries)
        # Usually every entry after the first (the free list's head) is at generation 0.
        if len(numbers) > 1 and not any(generations[1:]):
            self._add_entries(numbers[:1], offsets[:1], generations[:1], free_flags[:1])
            if self._add_new_generation_0(numbers[1:], offsets[1:], free_flags[1:]):
                return
            numbers, offsets = numbers[1:], offsets[1:]
            generations, free_flags = generations[1:], free_flags[1:]
        self._add_entries(numbers, offsets, generations, free_flags)

    def _add_new_generation_0(self, numbers: range, offsets: list, free_flags: list) -> bool:
        """Record generation-0 entries in bulk, as the loop would, when none is known yet;
        return False (and record nothing) when one is."""
        xref, free = self.xref, self.xref_free_entry
        if 0 not in xref:
            xref[0] = {}
            free[0] = {}
        elif not xref[0].keys().isdisjoint(numbers):
            return False  # the loop skips those: a newer table named them
        in_use = map(operator.not_, free_flags)
        xref[0].update(compress(zip(numbers, offsets, strict=True), in_use))
        for table in (0, _FREE_GENERATION):
            if table in free:
                free[table].update(zip(numbers, free_flags, strict=True))
        return True

    def _add_entries(self, numbers: range, offsets: list, generations: list, free_flags: list):
        """Record entries one by one by pypdf's rules."""
        xref, free = self.xref, self.xref_free_entry
        for num, offset, generation, is_free in zip(
            numbers, offsets, generations, free_flags, strict=True
        ):
            if generation not in xref:
                xref[generation] = {}
                free[generation] = {}
            if num in xref[generation]:
                continue
            if not is_free:
                xref[generation][num] = offset
            if generation in free:  # pypdf ignores the KeyError of a table it did not make
                free[generation][num] = is_free
            if _FREE_GENERATION in free:
                free[_FREE_GENERATION][num] = is_free

    def _read_xref_subsections(self, idx_pairs: list[int], get_entry: Any, used_before: Any):
        """Fill the xref from a stream's subsections as pypdf does, decoding regular data
        column by column."""
        columns = _xref_columns(idx_pairs, get_entry)
        if columns is None:
            return super()._read_xref_subsections(idx_pairs, get_entry, used_before)
        pairs = zip(idx_pairs[::2], idx_pairs[1::2], strict=True)
        numbers = [num for start, size in pairs for num in range(start, start + size)]
        xref, in_streams = self.xref, self.xref_objStm
        for num, kind, first, second in zip(numbers, *columns, strict=True):
            if kind == 1:  # in use, at a byte offset
                table = xref.setdefault(second, {})
                if num not in table and num not in in_streams:
                    table[num] = first
            elif kind == 2 and num not in xref.get(0, ()) and num not in in_streams:
                in_streams[num] = (first, second)  # in object stream ``first``, at ``second``
        return None

    def _get_object_from_stream(self, indirect_reference: IndirectObject) -> PdfObject:
        obj_id = indirect_reference.idnum
        if obj_id in self._object_stream_resolution_stack:  # pypdf raises for the cycle
            return super()._get_object_from_stream(indirect_reference)
        stmnum, _ = self.xref_objStm[obj_id]
        self._object_stream_resolution_stack.append(obj_id)
        try:
            obj = self._read_one(stmnum, obj_id)
        finally:
            self._object_stream_resolution_stack.pop()
        if obj is None:
            return super()._get_object_from_stream(indirect_reference)
        self.cache_indirect_object(0, obj_id, obj)
        return obj

    def _read_one(self, stmnum: int, obj_id: int) -> PdfObject | None:
        """Parse one object of a well-formed stream; None sends the caller to pypdf's way."""
        if stmnum not in self._objstm_index:
            self._objstm_index[stmnum] = self._index(stmnum)
        entry = self._objstm_index[stmnum]
        if entry is None or obj_id not in entry[1]:
            return None
        raw, spans = entry
        start, end = spans[obj_id]
        obj = read_plain_value(raw, start, end, self)
        if obj is not None:
            return obj
        data = BytesIO(raw)
        data.seek(start)
        try:
            read_non_whitespace(data)  # as pypdf does: the offset may point at whitespace
            data.seek(-1, 1)
            return read_object(data, self)
        except PdfStreamError:
            return None

    def _index(self, stmnum: int) -> tuple[bytes, dict[int, tuple[int, int]]] | None:
        """Return the stream's data and where each object starts and ends (the next object's
        offset, or the end), or None if irregular."""
        stream = IndirectObject(stmnum, 0, self).get_object()
        if getattr(stream, "get", lambda _key: None)("/Type") != "/ObjStm":
            return None
        count, first = stream.get("/N"), stream.get("/First")
        if not (isinstance(count, NumberObject) and isinstance(first, NumberObject)):
            return None
        raw = stream.get_data()
        tokens = raw[: int(first)].split()
        if int(count) < 1 or int(first) > len(raw) or len(tokens) != 2 * int(count):
            return None
        # pypdf does not skip \x0b between the numbers, as split() does.
        if b"\x0b" in raw[: int(first)] or not all(token.isdigit() for token in tokens):
            return None
        numbers = [int(token) for token in tokens]
        pairs = list(zip(numbers[::2], numbers[1::2], strict=True))
        offsets = [offset for _, offset in pairs]
        if offsets != sorted(set(offsets)) or int(first) + offsets[-1] > len(raw):
            return None
        if len(set(numbers[::2])) != len(pairs):
            return None  # an object listed twice: pypdf reads the first entry
        ends = [int(first) + offset for offset in offsets[1:]] + [len(raw)]
        # Only objects this stream is the authority for (incremental updates may override).
        return raw, {
            num: (int(first) + offset, end)
            for (num, offset), end in zip(pairs, ends, strict=True)
            if self.xref_objStm.get(num, (None,))[0] == stmnum
        }


def _well_formed(data: bytes, entries: dict[int, Any]) -> set[int]:
    """Return the numbers whose offset starts a header ``read_object_header`` reads at once."""
    numbers = [n for n, offset in entries.items() if type(offset) is int and offset >= 0]
    offsets = [entries[n] for n in numbers]
    ends = [offset + _WINDOW for offset in offsets]
    found = map(_HEADER_IN_WINDOW.match, repeat(data), offsets, ends)
    return {n for n, match in zip(numbers, found, strict=True) if match is not None}


def _regular_table(data: bytes, start: int) -> tuple[list, int] | None:
    """Return a regular classic xref table's subsections (first number, the entries' bytes)
    and the offset after its ``trailer`` keyword; None when anything is irregular."""
    head = _TABLE_START.match(data, start)
    if head is None:
        return None
    at, subsections = head.end(), []
    while True:
        section = _SUBSECTION.match(data, at)
        if section is None:
            return None
        first, size = int(section[1]), int(section[2])
        entries_end = section.end() + size * _ENTRY_SIZE
        entries = data[section.end() : entries_end]
        if len(entries) != size * _ENTRY_SIZE or not _regular_entries(entries):
            return None
        subsections.append((first, entries))
        after = _AFTER_ENTRIES.match(data, entries_end)
        if after[1]:
            return subsections, after.end()
        at = after.end()


def _generations(entries: bytes) -> list[int]:
    """Return the entries' generation numbers (quickly when all but the first are 0)."""
    count = len(entries) // _ENTRY_SIZE
    rest = entries[_ENTRY_SIZE:]
    if all(rest[column::_ENTRY_SIZE].count(b"0") == count - 1 for column in range(11, 16)):
        return [int(entries[11:16])] + [0] * (count - 1) if count else []
    return [int(entries[at + 11 : at + 16]) for at in range(0, len(entries), _ENTRY_SIZE)]


def _regular_entries(entries: bytes) -> bool:
    """Tell whether ``entries`` are 20-byte "oooooooooo ggggg k" entries, each ending in
    " \r", " \n", "\r\n" or "\r\r" (pypdf reads all four alike), checked column by column."""
    if not entries:
        return True
    columns = [entries[column::_ENTRY_SIZE] for column in range(_ENTRY_SIZE)]
    return (
        all(columns[column].isdigit() for column in _DIGIT_COLUMNS)
        and not columns[10].strip(b" ")
        and not columns[16].strip(b" ")
        and not columns[17].translate(None, b"nf")
        and not columns[18].translate(None, b" \r")
        and not columns[19].translate(None, b"\r\n")
    )


def _xref_columns(idx_pairs: list[int], get_entry: Any) -> list[list[int]] | None:
    """Return the (type, field 2, field 3) columns of a regular xref stream, or None."""
    cells = dict(zip(get_entry.__code__.co_freevars, get_entry.__closure__ or (), strict=True))
    if "entry_sizes" not in cells or "stream_data" not in cells:
        return None
    widths, data = cells["entry_sizes"].cell_contents, cells["stream_data"].cell_contents
    if len(idx_pairs) % 2 or not all(isinstance(n, int) and n >= 0 for n in idx_pairs):
        return None
    if len(widths) < 3 or not all(isinstance(w, int) and 0 <= w <= 8 for w in widths[:3]):
        return None
    if len(widths) > 3 and any(widths[3:]):
        return None  # pypdf reads only three fields: extra widths would shift its reading
    count, row = sum(idx_pairs[1::2]), sum(widths[:3])
    start = data.tell()
    raw = data.getvalue()[start : start + count * row]
    if row == 0 or len(raw) < count * row:
        return None
    columns, offset = [], 0
    for index, width in enumerate(widths[:3]):
        columns.append(_column(raw, offset, width, row, count, 1 if index == 0 else 0))
        offset += width
    # pypdf reads no further field of an entry of unknown type: the rest is read misaligned.
    return columns if set(columns[0]) <= {0, 1, 2} else None


def _column(raw: bytes, offset: int, width: int, row: int, count: int, default: int) -> list[int]:
    """Return one field of every entry: big-endian ``width`` bytes, or ``default`` for 0."""
    if width == 0:
        return [default] * count
    value = list(raw[offset::row])
    for shift in range(1, width):
        value = [(v << 8) | b for v, b in zip(value, raw[offset + shift :: row], strict=False)]
    return value
