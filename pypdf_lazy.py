"""A pypdf reader that opens faster and parses only the objects asked for out of an
object stream.

pypdf 7 parses every object of an object stream the first time any one of them is read.
Real 10-Q filings keep the catalog in a stream next to a 109,548-element /Dests array, so
reading the catalog costs 0.5-0.9 s of pure Python (2023_Q1_MSFT.pdf) although neither the
metadata nor the security structure walk ever looks at /Dests. ``LazyObjStmReader`` reads
the stream's index once and parses just the requested object. Anything irregular in a stream
(a bad header, an offset out of order, an object that does not parse) goes back to pypdf's
own method, so hostile files meet exactly pypdf's checks, warnings and errors.

Opening a file, pypdf (non-strict) reads the header ``N G obj`` of every object the xref
names, byte by byte: 24,000 headers and 80 ms on 2022_Q3_INTC.pdf. ``read_object_header``
matches a well-formed header with one regex and leaves the stream where pypdf would; any
other bytes (a comment, other whitespace, an overlong number, end of file) go to pypdf's
method, in the same way.

Reading an ordinary object (one the xref table places at a file offset) is the cost that
remains: pypdf's tokenizer reads page dictionaries and annotations a byte or a short chunk
at a time, 0.05-0.1 s for the pages of freeculture.pdf. ``get_object`` reads such an
object with one regex per token when its body is a strict subset of the syntax: ``<< >>``,
``[ ]``, names of printable ASCII without ``#``, integers and reals of under 20 characters,
``N G R``, ``true``, ``false``, ``null``, separated by spaces, tabs, CR or LF, followed by
``endobj`` (so never a stream, a string, a comment). It builds the objects pypdf builds
(the first of duplicate keys kept, with pypdf's warning; numbers through pypdf's own
constructors; references only where pypdf's 20-byte peek sees them) and caches them as
pypdf does. Anything else - another byte, a mismatched header, a free, cached, compressed
or looping object, an encrypted document, strict mode, a limit, nesting over 32 levels -
goes to pypdf's method from the same state.
"""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any

from pypdf import PdfReader, get_configuration
from pypdf._utils import WHITESPACES_AS_BYTES, StreamType, logger_warning, read_non_whitespace
from pypdf.errors import PdfStreamError
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NullObject,
    NumberObject,
    PdfObject,
    read_object,
)

# pypdf's header reading, when it meets no oddity: each number is at most
# _MAXIMUM_PART_LENGTH non-whitespace bytes (one more is "exceeds maximum length") and ends
# at the one whitespace byte it consumes; "obj" is read as 3 bytes, then every byte of
# WHITESPACES (not bytes.isspace(): no \x0b) is skipped, to stop on the first other byte.
_PART = IndirectObject._MAXIMUM_PART_LENGTH
_HEADER = re.compile(
    rb"(\d{1,%d}) (\d{1,%d}) obj[%s]*" % (_PART, _PART, re.escape(WHITESPACES_AS_BYTES))
)
# Enough for both numbers at their limit, " obj" and some whitespace; a match reaching the
# window's end (more whitespace, or the end of the file) goes to pypdf's method.
_WINDOW = 2 * _PART + 6 + 64

# One token of the subset, after spaces, tabs, CR or LF (pypdf's arrays, dictionaries,
# names and references all end a token at these; \x00, \x0b and \x0c they treat apart).
# pypdf reads a number as a run of "+,-.0-9" (NumberObject.NumberPattern), so a number must
# not be followed by one; a reference must fit pypdf's 20-byte peek with the byte after R.
_NAME_BYTES = re.escape(bytes(c for c in range(0x21, 0x7F) if c not in b"#%()/<>[]{}"))
_TOKEN = re.compile(
    rb"[ \t\r\n]*(?:(?P<name>/[%b]{1,127})(?![%b])"
    rb"|(?P<ref>(?P<id>\d+)[ \t\r\n]+(?P<gen>\d+)[ \t\r\n]+R)(?=[ \t\r\n/\[\]<>])"
    rb"|(?P<int>[+-]?\d+)(?![+,\-.0-9])|(?P<real>[+-]?(?:\d+\.\d*|\.\d+))(?![+,\-.0-9])"
    rb"|(?P<open><<|\[)|(?P<close>>>|\])|(?P<true>true)|(?P<false>false)|(?P<null>null))"
    % (_NAME_BYTES, _NAME_BYTES)
)
_END = re.compile(rb"[ \t\r\n]*endobj")
# Bytes no plain object holds: found before parsing, they spare a parse that would fail.
_NOT_PLAIN = re.compile(rb"stream|[(%#]")
_PEEK = 20  # read_object's peek at a number: a longer number or reference is read otherwise
_MAX_DEPTH = 32
_FIRST_READ, _MAX_READ = 2048, 1 << 21
_DUPLICATE = "Multiple definitions in dictionary at byte %(position)s for key %(key)s"
_DICT_SOURCE = "pypdf.generic._data_structures"  # the logger pypdf warns on


class LazyObjStmReader(PdfReader):
    """``PdfReader`` reading object headers fast and object streams lazily (same objects)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._objstm_index: dict[int, tuple[BytesIO, int, dict[int, int]] | None] = {}
        super().__init__(*args, **kwargs)

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

    def get_object(self, indirect_reference: int | IndirectObject) -> PdfObject | None:
        """Read a plain ordinary object with the fast parser, anything else as pypdf does."""
        ref = indirect_reference
        if isinstance(ref, int):
            ref = IndirectObject(ref, 0, self)
        obj = None
        if self._plain_candidate(ref):
            before = self.stream.tell()
            try:
                obj = self._read_plain(ref)
            except Exception:  # noqa: BLE001 - any surprise: pypdf's method, from the same state
                self.stream.seek(before)
        if obj is None:
            return super().get_object(indirect_reference)
        return self.cache_indirect_object(ref.generation, ref.idnum, obj)

    def _plain_candidate(self, ref: IndirectObject) -> bool:
        """Tell whether pypdf would read ``ref`` at an xref offset, unencrypted, non-strict."""
        gen, num = ref.generation, ref.idnum
        # pypdf sets _encryption last in __init__; before that its own path applies.
        if vars(self).get("_encryption", False) is not None or self.is_encrypted:
            return False
        if self.strict or (gen, num) in self.resolved_objects or (num, gen) in self._known_objects:
            return False
        if (gen == 0 and num in self.xref_objStm) or num not in self.xref.get(gen, {}):
            return False
        return not self.xref_free_entry.get(gen, {}).get(num, False)

    def _read_plain(self, ref: IndirectObject) -> PdfObject | None:
        """Parse ``ref``'s object if its header and body are plain; None for pypdf's way."""
        start, before = self.xref[ref.generation][ref.idnum], self.stream.tell()
        data = self._object_bytes(start) if isinstance(start, int) and start >= 0 else None
        header = _HEADER.match(data) if data is not None else None
        parsed = None
        if header is not None and (int(header[1]), int(header[2])) == (ref.idnum, ref.generation):
            parsed = self._parse(data, header.end())
        if parsed is None:
            self.stream.seek(before)
            return None
        obj, end, duplicates = parsed
        for position, key in duplicates:
            logger_warning(_DUPLICATE, source=_DICT_SOURCE, position=hex(start + position), key=key)
        self.stream.seek(start + end)  # where pypdf's read_object stops
        return obj

    def _object_bytes(self, start: int) -> bytes | None:
        """Return the file from ``start`` through the next ``endobj``; None for a stream."""
        size = _FIRST_READ
        while True:
            self.stream.seek(start)
            data = self.stream.read(size)
            end = data.find(b"endobj")
            if end >= 0:
                data = data[: end + 6]
                return None if _NOT_PLAIN.search(data) else data
            if _NOT_PLAIN.search(data) or len(data) < size or size >= _MAX_READ:
                return None
            size *= 8

    def _parse(self, data: bytes, pos: int) -> tuple[PdfObject, int, list[Any]] | None:
        """Parse the subset at ``pos``: the object, where it ends, duplicate keys; or None."""
        config = get_configuration()
        limits = (config.array_maximum_element_count, config.dictionary_maximum_element_count)
        stack: list[Any] = []  # an ArrayObject, or [entries, key awaiting a value, count]
        duplicates: list[tuple[int, NameObject]] = []
        match = _TOKEN.match
        while (token := match(data, pos)) is not None:
            pos, kind = token.end(), token.lastgroup
            if kind == "open":
                if len(stack) >= _MAX_DEPTH:
                    return None
                stack.append([{}, None, 0] if token[kind] == b"<<" else ArrayObject())
                continue
            value = _close(stack, token[kind]) if kind == "close" else _atom(token, kind, self)
            if value is None:
                return None
            if not stack:
                return (value, pos, duplicates) if _END.fullmatch(data, pos) else None
            if not _place(stack[-1], value, pos, duplicates, limits):
                return None
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
        if entry is None or obj_id not in entry[2]:
            return None
        data, first, offsets = entry
        data.seek(first + offsets[obj_id])
        try:
            read_non_whitespace(data)  # as pypdf does: the offset may point at whitespace
            data.seek(-1, 1)
            return read_object(data, self)
        except PdfStreamError:
            return None

    def _index(self, stmnum: int) -> tuple[BytesIO, int, dict[int, int]] | None:
        """Return the stream's data, /First and object offsets, or None if irregular."""
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
        if not all(token.isdigit() for token in tokens):
            return None
        numbers = [int(token) for token in tokens]
        pairs = list(zip(numbers[::2], numbers[1::2], strict=True))
        offsets = [offset for _, offset in pairs]
        if offsets != sorted(set(offsets)) or int(first) + offsets[-1] > len(raw):
            return None
        # Only objects this stream is the authority for (incremental updates may override).
        own = {num: off for num, off in pairs if self.xref_objStm.get(num, (None,))[0] == stmnum}
        return BytesIO(raw), int(first), own


def _atom(token: re.Match[bytes], kind: str | None, reader: PdfReader) -> PdfObject | None:
    """Build the object pypdf's read_object builds for one token (None: not the subset)."""
    text = token[kind]
    if kind == "name":
        return NameObject(text.decode())
    if kind == "int":
        return NumberObject(text) if len(text) < _PEEK else None
    if kind == "ref":
        if len(text) >= _PEEK:
            return None
        return IndirectObject(int(token["id"]), int(token["gen"]), reader)
    if kind == "real":
        return FloatObject(text) if len(text) < _PEEK else None
    if kind == "null":
        return NullObject()
    return BooleanObject(kind == "true")


def _close(stack: list[Any], text: bytes) -> PdfObject | None:
    """Pop the container ``text`` closes, as pypdf builds it; None if it closes nothing."""
    if not stack:
        return None
    top = stack.pop()
    if isinstance(top, ArrayObject):
        return top if text == b"]" else None
    entries, key, _ = top
    if text != b">>" or key is not None:
        return None
    retval = DictionaryObject()
    retval.update(entries)
    return retval


def _place(top: Any, value: PdfObject, end: int, duplicates: list, limits: tuple) -> bool:
    """Add ``value`` to the open container as pypdf does; False when pypdf would differ."""
    if isinstance(top, ArrayObject):
        top.append(value)
        return len(top) <= limits[0]
    entries, key, count = top
    if key is None:  # pypdf counts an entry, then requires a name for its key
        top[1], top[2] = value, count + 1
        return type(value) is NameObject and count + 1 <= limits[1]
    if key in entries:  # pypdf keeps the first value and warns where the second ends
        duplicates.append((end, key))
    else:
        entries[key] = value
    top[1] = None
    return True
