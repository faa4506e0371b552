r"""A fast reader for "plain" indirect objects that builds exactly what pypdf 7.1.0 builds.

pypdf's ``read_object`` reads byte by byte in pure Python, about 3.5 µs per sub-object; the
security structure walk (``riskscan``) parses hundreds of annotation and page dictionaries
per book and spent 100+ ms there. ``read_plain_object`` tokenizes an object with one
``findall`` of a compiled regex and builds the same classes with the same attributes, for a
strict subset of the syntax only. Anything else returns ``None`` and the caller asks pypdf,
so every irregular (or hostile) object still meets pypdf's own checks, warnings and errors.

The subset: the header ``N G obj`` (digits and PDF whitespace, the numbers equal to those
asked for), ONE value, whitespace, ``endobj``, all within 64 KB. Values: dictionaries
whose keys are names, without a duplicate key; arrays; names without ``#`` that are UTF-8;
numbers that ``int()``/``float()`` convert (pypdf would warn on the others and use 0), of
at most 40 bytes; references ``N G R``; ``true``, ``false``, ``null``; literal strings
without backslash or inner parenthesis; hex strings; at most 32 containers deep. Refused as
well: comments (a ``%`` outside a string), ``\x0b`` outside a string, a stream, a name
over 2,000 bytes (pypdf raises past 4,080), and whatever pypdf's element-count limits stop.

``read_plain_value`` reads an object of an object stream (no header, no ``endobj``): ONE
dictionary or array and whitespace fill the bytes from its offset to the next object's,
and no ``stream`` follows (pypdf reads past a dictionary's ``>>`` only to look for it).

Where pypdf's grammar is odd, the subset follows pypdf, not the PDF specification:

* a name ends at ``\s`` (``\x0b`` included, ``\x00`` not: pypdf keeps ``\x00`` in a
  name) or a delimiter; nothing else needs a delimiter after it (pypdf reads ``5true`` as
  5 and true);
* a reference is seen only if a non-letter follows ``R`` and ``N G R`` plus that byte fit
  in pypdf's 20-byte peek (``IndirectPattern``); a signed one (which pypdf accepts) is
  refused;
* a number is pypdf's run of ``[+,\-.0-9]`` (``+-.`` is a range there: comma included),
  real if it holds a dot;
* a literal string keeps its raw bytes (no end-of-line normalisation) and goes through
  ``create_string_object`` (BOM and PDFDocEncoding decision); printable ASCII takes a
  shortcut that sets the same attributes.

Left to the caller, as ``PdfReader.get_object`` does them: the cache (``resolved_objects``;
``cache_indirect_object`` also sets ``indirect_reference`` on the object it stores), free
entries, finding an object in an object stream, and decryption (never use
``read_plain_object`` on an encrypted file).
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import Any

from pypdf import get_configuration
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
    TextStringObject,
    create_string_object,
)

_WINDOW = 64 * 1024
_MAX_DEPTH = 32
# pypdf's IndirectPattern is matched on a 20-byte peek and needs the byte after "R".
_REF_MAX_LENGTH = 19
# pypdf reads a longer number, up to 47 bytes, the same way; past that it raises.
_NUMBER_MAX_LENGTH = 40
_NAME_MAX_LENGTH = 2000
_WHITESPACE = b"\x00\t\n\x0c\r "
_NAME_WHITESPACE = b"\t\n\x0c\r "  # what ends a name: pypdf keeps \x00 in it

_WS = rb"[\x00\t\n\x0c\r ]*"
_HEADER = re.compile(_WS + rb"(\d{1,20})[\x00\t\n\x0c\r ]+(\d{1,20})[\x00\t\n\x0c\r ]+obj")
# No token needs to end at a delimiter: pypdf reads "5true" as 5 and true as well. Only a
# reference does: pypdf sees one when a non-letter follows "R".
_TOKENS = (
    # A name ends at \s or a delimiter, as in pypdf: "#" and \x0b then fail to tokenize.
    rb"/[^\t\n\x0b\x0c\r ()<>\[\]{}/%#]*",
    # An array of numbers only (/Rect, /MediaBox) is one token, its numbers built in bulk.
    rb"\[[\t\n\x0c\r ]*[+,\-.0-9][\t\n\x0c\r +,\-.0-9]*\]",
    rb"<<|>>|\[|\]",
    rb"\d+[\t\n\x0c\r ]+\d+[\t\n\x0c\r ]+R(?=[^A-Za-z])",  # IndirectPattern, no sign
    # pypdf's run of number bytes ("+-." is a range there: comma included), <= 40 bytes.
    rb"[+,\-.0-9]{1,%d}(?![+,\-.0-9])" % _NUMBER_MAX_LENGTH,
    rb"\([^()\\]*\)",
    rb"<[0-9A-Fa-f\x00\t\n\x0c\r ]*>",
    rb"true|false|null",
)
# findall() gives every token, or b"" for a byte no token starts with (the alternative
# outside the group), so one C call tokenizes the object and proves nothing was skipped.
_TOKEN = re.compile(_WS + rb"(?:(" + b"|".join(_TOKENS) + rb")|[^\x00\t\n\x0c\r ])")
_NOT_PRINTABLE = re.compile(rb"[^\t\n\r\x20-\x7e]")
_STREAM_NEXT = re.compile(_WS + rb"stream")
_new_int, _new_float = int.__new__, float.__new__


class _Refused(Exception):
    """The bytes are outside the plain subset."""


def read_plain_object(
    data: bytes, start: int, idnum: int, generation: int, reader: Any
) -> PdfObject | None:
    """Parse the indirect object whose header ``idnum generation obj`` begins at data[start]
    as pypdf's get_object would (header, then read_object), or return None when its bytes are
    outside the plain subset (the caller then asks pypdf)."""
    # Names are decoded as UTF-8, pypdf's first charset; others are refused.
    if start < 0 or NameObject.CHARSETS[0] != "utf-8":
        return None
    header = _HEADER.match(data, start, start + _WINDOW)
    if header is None or int(header[1]) != idnum or int(header[2]) != generation:
        return None
    if reader.strict and _superfluous_whitespace(header, start):
        return None  # strict pypdf logs "Superfluous whitespace found in object header"
    # pypdf never reads "endobj"; requiring it proves no "stream" follows a dictionary.
    # An "endobj" inside a string cuts the string short, which is refused.
    end = data.find(b"endobj", header.end(), start + _WINDOW)
    if end < 0:
        return None
    tokens = _tokens(data, header.end(), end)
    if tokens is None or _cut_name(tokens, data, end):
        return None
    return _built(tokens, reader)


def read_plain_value(data: bytes, start: int, end: int, reader: Any) -> PdfObject | None:
    """Parse the dictionary or array that fills ``data[start:end]`` (an object of an object
    stream, up to the next one) as pypdf's read_object would from ``start``, or return None
    when its bytes are outside the plain subset (the caller then asks pypdf)."""
    if end - start > _WINDOW or NameObject.CHARSETS[0] != "utf-8":
        return None
    tokens = _tokens(data, start, end)
    # pypdf reads a container up to its closer, and past it only to see whether "stream"
    # follows a dictionary (the bytes up to ``end`` are whitespace).
    if tokens is None or not (tokens[0] == b"<<" or tokens[0][0] == 91):
        return None
    if tokens[0] == b"<<" and _STREAM_NEXT.match(data, end):
        return None
    return _built(tokens, reader)


def _tokens(data: bytes, start: int, end: int) -> list[bytes] | None:
    """Return the tokens of ``data[start:end]``, or None when a byte starts none (or a name
    is near pypdf's length limit)."""
    tokens = _TOKEN.findall(data, start, end)
    if not tokens or b"" in tokens:
        return None
    if end - start > _NAME_MAX_LENGTH and _long_name(tokens):
        return None
    return tokens


def _built(tokens: list[bytes], reader: Any) -> PdfObject | None:
    """Return the one value the tokens spell, or None when pypdf would read it otherwise."""
    try:
        return _build(tokens, reader)
    # ValueError: a number pypdf reads as 0 with a warning, or a name that is not UTF-8;
    # IndexError: a closer without an opener; TypeError: an array as a dictionary key.
    except (_Refused, ValueError, IndexError, TypeError):
        return None


def _cut_name(tokens: list[bytes], data: bytes, end: int) -> bool:
    """Tell whether a name runs into "endobj": pypdf reads "/Aendobj" (and "/A\\x00endobj")
    as one name."""
    return tokens[-1][0] == 47 and data[end - 1] not in _NAME_WHITESPACE


def _long_name(tokens: list[bytes]) -> bool:
    """Tell whether a name is near pypdf's name length limit (it raises past 4,080 bytes)."""
    return any(len(token) > _NAME_MAX_LENGTH for token in tokens if token[0] == 47)


def _superfluous_whitespace(header: re.Match[bytes], start: int) -> bool:
    """Tell whether the header has more whitespace than one byte after each number."""
    return header.end() - start != len(header[1]) + len(header[2]) + 5


def _build(tokens: list[bytes], reader: Any) -> PdfObject:
    """Build the one value the tokens spell, as pypdf's read_object does."""
    configuration = get_configuration()
    array_limit = configuration.array_maximum_element_count
    dictionary_limit = configuration.dictionary_maximum_element_count
    # Each container is a list (a dictionary's keys and values alternate in it, checked when
    # it closes); the outermost one takes the single value.
    items: list[Any] = []
    put = items.append
    stack = [items]
    for token in tokens:
        first = token[0]
        if first == 47:  # "/"
            put(NameObject(token.decode()))
        elif 42 < first < 58:  # a digit, "+", ",", "-" or "."
            if token[-1] == 82:  # "R"
                if len(token) > _REF_MAX_LENGTH:
                    raise _Refused  # pypdf's 20-byte peek does not see it whole
                idnum, generation, _ = token.split()
                put(IndirectObject(int(idnum), int(generation), reader))
            elif 46 in token:  # "."
                put(_new_float(FloatObject, float(token)))
            else:
                put(_new_int(NumberObject, int(token)))
        elif token == b"[" or token == b"<<":
            if len(stack) > _MAX_DEPTH:
                raise _Refused
            items = ArrayObject() if first == 91 else []
            put = items.append
            stack.append(items)
        elif token == b"]" or token == b">>":
            closed = stack.pop()
            items = stack[-1]
            put = items.append
            if first == 93:
                if type(closed) is not ArrayObject or len(closed) > array_limit:
                    raise _Refused
                put(closed)
            else:
                put(_dictionary(closed, dictionary_limit))
        elif first == 91:
            put(_numbers(token, array_limit))
        else:
            put(_scalar(token))
    if len(stack) != 1 or len(items) != 1:
        raise _Refused  # unterminated, no value or two values
    return items[0]


def _numbers(token: bytes, limit: int) -> ArrayObject:
    """Build an array of numbers: integers, reals, or both (ValueError: pypdf would warn)."""
    parts = token[1:-1].split()
    if len(parts) > limit:
        raise _Refused
    if len(token) > _NUMBER_MAX_LENGTH and len(max(parts, key=len)) > _NUMBER_MAX_LENGTH:
        raise _Refused
    dots = token.count(b".")
    if not dots:
        return ArrayObject(map(_new_int, repeat(NumberObject), map(int, parts)))
    # As many dots as numbers: each has one, or one has two and float() raises.
    if dots == len(parts):
        return ArrayObject(map(_new_float, repeat(FloatObject), map(float, parts)))
    return ArrayObject(
        [
            _new_float(FloatObject, float(part))
            if 46 in part
            else _new_int(NumberObject, int(part))
            for part in parts
        ]
    )


def _dictionary(items: list[Any], limit: int) -> DictionaryObject:
    """Build the DictionaryObject from alternating keys and values, as pypdf does."""
    if type(items) is not list:
        raise _Refused  # "]" closing a dictionary
    keys = items[::2]
    result = DictionaryObject(zip(keys, items[1::2], strict=False))
    # A short result means a key without a value, or a duplicate key (pypdf warns and
    # keeps the first value).
    if len(result) * 2 < len(items) or len(result) > limit:
        raise _Refused
    for key in keys:
        if type(key) is not NameObject:
            raise _Refused  # pypdf warns, or ends the dictionary at a null key
    return result


def _scalar(token: bytes) -> PdfObject:
    """Build a literal string, hex string or keyword token."""
    first = token[0]
    if first == 40:  # "("
        return _string(token[1:-1])
    if first == 60:  # "<"
        return _hex_string(token[1:-1])
    return NullObject() if token == b"null" else BooleanObject(token == b"true")


def _string(raw: bytes) -> PdfObject:
    """Build a literal string as create_string_object does."""
    if _NOT_PRINTABLE.search(raw) is None:
        return _ascii_text(raw)
    return create_string_object(raw)


def _ascii_text(raw: bytes) -> TextStringObject:
    """Return what create_string_object(raw) returns for printable ASCII (no BOM, no NUL)."""
    text = str.__new__(TextStringObject, raw.decode("ascii"))
    text._original_bytes = raw
    text.autodetect_utf16 = False
    text.autodetect_pdfdocencoding = True
    text.utf16_bom = b""
    return text


def _hex_string(raw: bytes) -> PdfObject:
    """Decode hex digits as read_hex_string_from_stream does (an odd last digit gets a 0)."""
    digits = raw.translate(None, _WHITESPACE)
    if len(digits) % 2:
        digits += b"0"
    return create_string_object(bytes.fromhex(digits.decode("ascii")))
