"""PDF risk scan: a pdfid-style byte scan, a bounded structure walk, and one risk verdict.

Two views of the same file, because each is blind where the other sees:

* ``scan_bytes`` counts risky PDF *names* in the raw bytes, in the manner of Didier
  Stevens' pdfid. It is fast and cannot be fooled by a broken cross-reference table,
  but it sees nothing inside compressed object streams (``/ObjStm``) or encrypted data.
  Hex escapes in names (``/J#61vaScript``) are decoded and recorded as obfuscation.
* ``scan_structure`` walks the parsed document with pypdf (run it in the parse child):
  catalog ``/OpenAction`` and ``/AA``, page ``/AA``, annotation ``/A`` and ``/AA``, form
  field ``/AA`` and ``/A``, the ``/Names`` ``/JavaScript`` and ``/EmbeddedFiles`` trees,
  outline actions, file attachment and rich media annotations, ``/Next`` action chains.
  Objects inside object streams are seen like any other. The walk is bounded in objects
  visited and tree depth; any error or exceeded bound marks it ``structure_incomplete``.
  A leaf page whose own bytes prove it holds neither ``/AA`` nor ``/Annots`` (a plain
  dictionary: no string, comment, stream or hex escape), and nothing pypdf raises on (an
  overlong number or name, deep nesting), is not parsed (``_PageTree``); an unusual page
  tree goes to pypdf's flatten. Tests hold both ways equal on the corpus.

Risk rule (``assess``), first match wins:

* **high** - the structure walk found JavaScript (an action, or a ``/JS`` entry), a
  ``/Launch`` action, an embedded file (name tree or file attachment annotation), rich
  media or XFA; or any risky name is hex-obfuscated in the bytes (no honest writer does
  that); or, when the structure walk did not complete, the bytes hold ``/JS``,
  ``/JavaScript``, ``/Launch``, ``/EmbeddedFile``, ``/RichMedia`` or ``/XFA``.
* **unknown** - a scan did not finish (no byte scan, no structure walk, or an incomplete
  walk), so the file cannot be called low.
* **medium** - an automatic action other than a plain ``/GoTo`` (document open action,
  document/page/field/annotation ``/AA``: it runs without a click); one of the high names
  above present in the bytes but not reached by a complete walk (unreferenced, or in a
  place the walk does not visit); ``/JBIG2Decode`` (a decoder with a history of
  exploits); non-whitespace data after the last ``%%EOF`` (appended payloads, polyglots).
* **low** - none of these. Actions that need a click and leave the document (``/URI``
  links, ``/SubmitForm`` buttons, ``/GoToR``, ``/ImportData``), plain forms (``/AcroForm``
  without automatic actions), object streams, several ``%%EOF`` (incremental saves) and
  an open action that only shows a page are ordinary in clean files: they are reported
  as indicators and can be refused by policy, but do not raise the risk.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pypdf import PdfReader, apply_configuration, get_configuration
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

BYTE_NAMES = (
    "JS", "JavaScript", "AA", "OpenAction", "Launch", "EmbeddedFile", "RichMedia",
    "XFA", "AcroForm", "JBIG2Decode", "ObjStm", "URI", "Encrypt",
)  # fmt: skip
_WHITESPACE = b"\x00\t\n\x0c\r "
_DELIMS = rb"\x00\t\n\x0c\r ()<>\[\]{}/%"
# Longest hex-escaped spelling of a watched name: 12 chars, each "#xx".
_HEX_NAME_MAX = 36
# A name either regex matches ends within this many bytes of its "/" (the "/", 36 bytes,
# a "#", 36 bytes, and the byte after, read by the lookahead).
_NAME_REACH = 2 * _HEX_NAME_MAX + 3
# Names only (an alternation with "%%EOF" makes a regex five times slower), and plain and
# hex-escaped spellings apart: one group per regex keeps findall cheap on hostile files.
# The lookahead for a watched name's first letter skips most of a filing's "/" fast
# (2022_Q3_INTC.pdf: 129,390 of them; 6.6 -> 3.7 ms).
_NAME_RE = re.compile(
    rb"/(?=[%b])(%b)(?![^%b])"
    % (
        bytes(sorted({n.encode()[0] for n in BYTE_NAMES})),
        b"|".join(n.encode() for n in BYTE_NAMES),
        _DELIMS,
    )
)
_HEX_NAME_RE = re.compile(
    rb"/([^%b#]{0,%d}#[^%b]{0,%d})(?![^%b])"
    % (_DELIMS, _HEX_NAME_MAX, _DELIMS, _HEX_NAME_MAX, _DELIMS)
)
_HEX_ESCAPE_RE = re.compile(rb"#([0-9A-Fa-f]{2})")
# _HEX_NAME_RE is tried at every "/" (47,470 in a megabyte of 2022_Q3_INTC.pdf), so it runs
# piece by piece and skips the pieces without a "#": a filing's dictionaries hold few.
_HEX_PIECE = 16 * 1024
_EOF_RE = re.compile(rb"%%EOF")  # findall is faster than bytes.count here
_BLOCK = 1 << 20
_OVERLAP = 256  # a %%EOF and the whitespace after it are seen in one buffer

MAX_OBJECTS = 200_000
MAX_DEPTH = 64
# pypdf 7 refuses arrays over 100k items, and parses a whole object stream at once: a
# clean 10-Q (2023_Q1_MSFT.pdf) keeps its catalog next to a 110k-item /Dests leaf.
MAX_ARRAY_ITEMS = 1_000_000

ACTION_KINDS = {
    "/JavaScript": "javascript", "/Launch": "launch", "/URI": "uri",
    "/SubmitForm": "submit_form", "/ImportData": "import_data", "/GoToR": "goto_remote",
    "/GoToE": "goto_embedded", "/RichMediaExecute": "rich_media",
}  # fmt: skip
_ANNOT_KINDS = {"/FileAttachment": "embedded_file", "/RichMedia": "rich_media"}
_AUTO_TRIGGERS = ("open_action", "document_aa", "page_aa", "field_aa", "annotation_aa")
_HIGH_STRUCTURE = ("javascript", "launch", "embedded_file", "rich_media", "xfa")
_HIGH_BYTES = ("/JS", "/JavaScript", "/Launch", "/EmbeddedFile", "/RichMedia", "/XFA")
INCOMPLETE = "structure_incomplete"

# Policy feature -> indicator keys that show it. Open actions and forms are judged by the
# structure walk only: the bytes cannot tell "/OpenAction [page /Fit]" from a script.
FEATURES: dict[str, frozenset[str]] = {
    "javascript": frozenset({"javascript", "/JS", "/JavaScript"}),
    "launch": frozenset({"launch", "/Launch"}),
    "embedded_file": frozenset({"embedded_file", "/EmbeddedFile"}),
    "rich_media": frozenset({"rich_media", "/RichMedia"}),
    "xfa": frozenset({"xfa", "/XFA"}),
    "open_action": frozenset({"open_action"}),
    "acroform": frozenset({"acroform"}),
    "jbig2": frozenset({"/JBIG2Decode"}),
    "uri": frozenset({"uri", "/URI"}),
}


# --- byte scan ----------------------------------------------------------------------------


def scan_bytes(path: str) -> dict[str, Any]:
    """Count risky PDF names, ``%%EOF`` markers and trailing bytes, streaming the file.

    Returns ``{"names": {"/JS": {"count": n, "obfuscated": m}, ...}`` (names seen at least
    once; ``obfuscated`` counts hex-escaped spellings), ``"eof_markers"``,
    ``"bytes_after_eof"`` (from the first non-whitespace byte after the last ``%%EOF`` to
    the last non-whitespace byte of the file; 0 without a marker) and ``"size"``.
    """
    tally = _ByteTally()
    with open(path, "rb") as fh:
        while True:
            # A buffer is the bytes carried over and the next block, read again from the
            # file rather than joined (a copy of each megabyte).
            carried = tally.size - tally.base
            fh.seek(tally.base)
            buf = fh.read(carried + _BLOCK)
            tally.note_block(buf, carried)
            if len(buf) == carried:
                tally.count_tokens(buf, len(buf), len(buf))
                return tally.result()
            names_end, limit, held = _cut(buf, tally.held is not None)
            tally.count_tokens(buf, names_end, limit)
            if held >= 0:
                tally.held = _names(buf, held, limit)
            tally.base += limit


class _ByteTally:
    """Running counts of one byte scan; ``base`` is the file offset of the buffer start."""

    def __init__(self) -> None:
        self.names: Counter[str] = Counter()
        self.obfuscated: Counter[str] = Counter()
        self.eof_markers = 0
        self.eof_end = -1
        self.content_end = 0
        self.size = 0
        self.base = 0
        # The names of a "/" held back by _cut, counted with the next buffer's names.
        self.held: tuple[list[bytes], list[bytes]] | None = None

    def note_block(self, buf: bytes, carried: int) -> None:
        """Track the size and the end of the last non-whitespace byte, given a buffer whose
        first ``carried`` bytes were seen before."""
        stripped = _content_end(buf, carried) - carried
        if stripped > 0:
            self.content_end = self.size + stripped
        self.size += len(buf) - carried

    def count_tokens(self, buf: bytes, names_end: int, limit: int) -> None:
        """Count the names that start before ``names_end`` and the markers that start before
        ``limit`` (the rest come with the next buffer)."""
        plain, escaped = _names(buf, 0, names_end)
        if self.held is not None and names_end:
            # First, as in the buffer that carrying the "/" would have counted it in.
            plain, escaped = self.held[0] + plain, self.held[1] + escaped
            self.held = None
        # Counter over findall keeps the per-token work in C: a file of 50 million "/JS "
        # tokens would take 40 s with a Python loop over finditer.
        for name, n in Counter(plain).items():
            self.names["/" + name.decode()] += n
        for raw, n in Counter(escaped).items():
            self._count_hex_name(raw, n)
        end = limit + len(b"%%EOF") - 1  # a marker counts here when it starts before limit
        found = len(_EOF_RE.findall(buf, 0, end))
        if found:
            self.eof_markers += found
            last = buf.rfind(b"%%EOF", 0, end) + len(b"%%EOF")
            self.eof_end = self.base + _skip_whitespace(buf, last)

    def _count_hex_name(self, raw: bytes, n: int) -> None:
        decoded = _HEX_ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 16)]), raw).decode("latin-1")
        if decoded in BYTE_NAMES:
            self.names["/" + decoded] += n
            self.obfuscated["/" + decoded] += n

    def result(self) -> dict[str, Any]:
        """Return the scan as a plain dict."""
        after = self.content_end - self.eof_end if self.eof_end >= 0 else 0
        return {
            "names": {
                k: {"count": n, "obfuscated": self.obfuscated[k]} for k, n in self.names.items()
            },
            "eof_markers": self.eof_markers,
            "bytes_after_eof": max(0, after),
            "size": self.size,
        }


def _names(buf: bytes, start: int, end: int) -> tuple[list[bytes], list[bytes]]:
    """Return the plain and the hex-escaped watched names from "/"s in ``buf[start:end]``."""
    return _NAME_RE.findall(buf, start, end), _hex_names(buf, start, end)


def _hex_names(buf: bytes, start: int, end: int) -> list[bytes]:
    """Return ``_HEX_NAME_RE.findall(buf, start, end)``, searching only the pieces with a "#"."""
    names: list[bytes] = []
    while start < end:
        piece_end = _piece_end(buf, start, end)
        if buf.find(b"#", start, piece_end) >= 0:
            names += _HEX_NAME_RE.findall(buf, start, piece_end)
        start = piece_end
    return names


def _piece_end(buf: bytes, start: int, end: int) -> int:
    """Return where the piece from ``start`` ends: at its last "/" (a name before it ends
    before it), or a whole piece on when no "/" follows ``start`` (a name from ``start`` is
    shorter than a piece)."""
    whole = start + _HEX_PIECE
    if whole >= end:
        return end
    slash = buf.rfind(b"/", start + 1, whole)
    return whole if slash < 0 else slash


def _cut(buf: bytes, holding: bool) -> tuple[int, int, int]:
    """Return ``(names_end, limit, held)``: names are counted in ``buf`` before ``names_end``
    and ``%%EOF`` markers before ``limit``, the bytes from ``limit`` on are carried into the
    next buffer, and ``held`` is a "/" held back (-1 for none).

    Names never contain "/", so every name starting before a "/" ends before it: stopping
    at the last "/" before the final ``_OVERLAP`` bytes (or at those bytes when there is no
    "/") is exact. A "/" far before them is not carried (a "/" then megabytes without one
    would be copied and searched again with every block): markers are counted up to 5 bytes
    before them, and the "/" is held back, its names counted with the next buffer's names
    (``holding``: later buffers without a "/" do the same). A marker before that point has
    ``_OVERLAP`` bytes after it in the buffer, so it counts as it would in a later buffer.
    """
    end = max(0, len(buf) - _OVERLAP)
    slash = buf.rfind(b"/", 0, end)
    if slash < 0 and not holding:
        return end, end, -1
    stop = max(0, end - len(b"%%EOF"))
    if slash < 0:
        return 0, stop, -1
    if slash + _NAME_REACH > stop:
        return slash, slash, -1
    return slash, stop, slash


def _content_end(buf: bytes, start: int) -> int:
    """Return the end of the last non-whitespace byte of ``buf[start:]`` (``start`` if none),
    stripping ever longer tails: ``rstrip`` would copy the megabyte before them."""
    size = 64
    while True:
        low = max(start, len(buf) - size)
        stripped = buf[low:].rstrip(_WHITESPACE)
        if stripped or low == start:
            return low + len(stripped)
        size *= 2


def _skip_whitespace(buf: bytes, pos: int) -> int:
    """Return the index of the first non-whitespace byte at or after ``pos`` (or the end)."""
    stripped = buf[pos : pos + _OVERLAP].lstrip(_WHITESPACE)
    return pos + min(_OVERLAP, len(buf) - pos) - len(stripped)


# --- structure walk -----------------------------------------------------------------------


class _Incomplete(Exception):
    """The walk hit a bound; what it found so far still counts."""


def scan_structure(
    reader: PdfReader, max_objects: int = MAX_OBJECTS, max_depth: int = MAX_DEPTH
) -> list[dict[str, Any]]:
    """Walk actions, scripts, forms and attachments; return structure indicators."""
    walk = _Walk(max_objects, max_depth)
    limit = max(MAX_ARRAY_ITEMS, get_configuration().array_maximum_element_count)
    try:
        with apply_configuration(array_maximum_element_count=limit):
            walk.document(reader)
    except Exception:  # noqa: BLE001 - hostile files break parsers in any way; say so
        walk.counts[INCOMPLETE] = 1
    return [_indicator(key, n, "structure") for key, n in sorted(walk.counts.items()) if n]


class _Walk:
    """One bounded walk; ``counts`` maps indicator keys to how often they were seen."""

    def __init__(self, max_objects: int, max_depth: int) -> None:
        self.counts: Counter[str] = Counter()
        self.max_objects = max_objects
        self.max_depth = max_depth
        self.visits = 0
        self.seen: set[Any] = set()

    def resolve(self, obj: Any) -> Any:
        """Dereference ``obj``, counting it against the object budget."""
        self.visits += 1
        if self.visits > self.max_objects:
            raise _Incomplete("object budget exhausted")
        return obj.get_object() if isinstance(obj, IndirectObject) else obj

    def first_visit(self, obj: Any) -> bool:
        """Return False when ``obj`` was already walked (loops in /Next, /Kids, outlines)."""
        ref = getattr(obj, "indirect_reference", None)
        key = (ref.idnum, ref.generation) if isinstance(ref, IndirectObject) else id(obj)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def get(self, obj: Any, key: str) -> Any:
        """Return ``obj[key]`` dereferenced, or None when ``obj`` is no dictionary."""
        if not isinstance(obj, DictionaryObject):
            return None
        return self.resolve(obj.get(key))

    def document(self, reader: PdfReader) -> None:
        """Walk the catalog, the pages, the form and the outline."""
        catalog = self.resolve(reader.trailer.get("/Root"))
        self.open_action(self.get(catalog, "/OpenAction"))
        self.additional_actions(self.get(catalog, "/AA"), "document_aa")
        self.names(self.get(catalog, "/Names"))
        self.acroform(self.get(catalog, "/AcroForm"))
        for page in self.pages_to_walk(reader, catalog):
            self.page(page)
        self.outline(self.get(catalog, "/Outlines"))

    def open_action(self, action: Any) -> None:
        # An array is a destination (show a page), not an action.
        if isinstance(action, DictionaryObject):
            self.action_chain(action, "open_action")

    def additional_actions(self, aa: Any, trigger: str) -> None:
        """Walk every action of an ``/AA`` dictionary."""
        if isinstance(aa, DictionaryObject):
            for key in list(aa.keys()):
                self.action_chain(aa.get(key), trigger)

    def action_chain(self, first: Any, trigger: str | None) -> None:
        """Count each action along its ``/Next`` chain; note a non-GoTo automatic trigger."""
        pending, automatic = [first], False
        while pending:
            action = self.resolve(pending.pop())
            if not isinstance(action, DictionaryObject) or not self.first_visit(action):
                continue
            kind = action.get("/S")
            automatic = automatic or kind != "/GoTo"
            self.count_action(action, kind)
            nxt = self.resolve(action.get("/Next"))
            pending.extend(nxt if isinstance(nxt, ArrayObject) else [nxt] if nxt else [])
        if trigger and automatic:
            self.counts[trigger] += 1

    def count_action(self, action: DictionaryObject, kind: Any) -> None:
        # Rendition and other actions may carry a script in /JS whatever their /S.
        if kind in ACTION_KINDS:
            self.counts[ACTION_KINDS[kind]] += 1
        elif "/JS" in action:
            self.counts["javascript"] += 1

    def names(self, names: Any) -> None:
        """Walk the document-level JavaScript and embedded file name trees."""
        for value in self.name_tree(self.get(names, "/JavaScript")):
            self.action_chain(value, None)
        for _ in self.name_tree(self.get(names, "/EmbeddedFiles")):
            self.counts["embedded_file"] += 1

    def name_tree(self, root: Any) -> list[Any]:
        """Return the leaf values of a name tree, bounded in depth."""
        values, pending = [], [(root, 0)]
        while pending:
            node, depth = pending.pop()
            if not isinstance(node, DictionaryObject):
                continue
            self.check_depth(depth)
            pairs = self.get(node, "/Names")
            if isinstance(pairs, ArrayObject):
                values.extend(pairs[1::2])
            kids = self.get(node, "/Kids")
            if isinstance(kids, ArrayObject):
                pending.extend((self.resolve(kid), depth + 1) for kid in kids)
        return values

    def check_depth(self, depth: int) -> None:
        """Stop the walk when a tree is deeper than allowed."""
        if depth > self.max_depth:
            raise _Incomplete("tree too deep")

    def acroform(self, form: Any) -> None:
        """Count form fields, XFA, and field actions through the ``/Kids`` tree."""
        if not isinstance(form, DictionaryObject):
            return
        if self.get(form, "/XFA") is not None:
            self.counts["xfa"] += 1
        fields = self.get(form, "/Fields")
        pending = [(f, 0) for f in fields] if isinstance(fields, ArrayObject) else []
        while pending:
            ref, depth = pending.pop()
            field = self.resolve(ref)
            if not isinstance(field, DictionaryObject) or not self.first_visit(field):
                continue
            self.check_depth(depth)
            self.counts["acroform"] += 1
            self.widget_actions(field, "field_aa")
            kids = self.get(field, "/Kids")
            if isinstance(kids, ArrayObject):
                pending.extend((kid, depth + 1) for kid in kids)

    def widget_actions(self, obj: DictionaryObject, trigger: str) -> None:
        """Walk the ``/A`` (on click) and ``/AA`` (automatic) actions of an annotation/field."""
        if obj.get("/A") is not None:
            self.action_chain(obj.get("/A"), None)
        self.additional_actions(self.get(obj, "/AA"), trigger)

    def pages_to_walk(self, reader: PdfReader, catalog: Any) -> list[Any]:
        """Return the pages that may carry ``/AA`` or ``/Annots``: from ``_PageTree`` when
        the page tree is regular, else every page, as pypdf flattens them."""
        visits = self.visits
        try:
            return _PageTree(reader, self).pages(self.get(catalog, "/Pages"))
        except _Irregular:
            self.visits = visits  # the fallback counts every page itself
            return reader.pages

    def page(self, page: DictionaryObject) -> None:
        """Walk a page's ``/AA`` and its annotations."""
        page = self.resolve(page)  # already resolved; counts the page against the budget
        self.additional_actions(self.get(page, "/AA"), "page_aa")
        annots = self.get(page, "/Annots")
        for ref in annots if isinstance(annots, ArrayObject) else []:
            annot = self.resolve(ref)
            # Widgets already walked as form fields are skipped (first_visit).
            if isinstance(annot, DictionaryObject) and self.first_visit(annot):
                self.annotation(annot)

    def annotation(self, annot: DictionaryObject) -> None:
        """Count attachment and rich media annotations, and walk the annotation's actions."""
        kind = _ANNOT_KINDS.get(annot.get("/Subtype"))
        if kind:
            self.counts[kind] += 1
        self.widget_actions(annot, "annotation_aa")

    def outline(self, outlines: Any) -> None:
        """Walk the actions of the outline (bookmark) items."""
        pending = [self.get(outlines, "/First")]
        while pending:
            item = pending.pop()
            if not isinstance(item, DictionaryObject) or not self.first_visit(item):
                continue
            if item.get("/A") is not None:
                self.action_chain(item.get("/A"), None)
            pending.extend(self.get(item, key) for key in ("/First", "/Next"))


class _Irregular(Exception):
    """The page tree is not one ``_PageTree`` vouches for: pypdf flattens it instead."""


_WS = rb"[\x00\t\n\x0c\r ]"
_PLAIN_PAGE = re.compile(rb"(\d{1,10})%b+(\d{1,5})%b+obj%b*(<<.*>>)%b*endobj" % ((_WS,) * 4), re.S)
_PAGE_TYPE = re.compile(rb"/Type%b*/Page(?![^%b])" % (_WS, _DELIMS))
_BRACKETS = re.compile(rb"<<|>>|[<>]")
# A leaf holding none of these, read as bytes, holds no /AA and no /Annots: with no string,
# comment, stream or hex escape, no key can hide, and the dictionary's end is certain.
_MAY_ACT = (b"/Annots", b"/AA", b"/Kids", b"/Pages", b"(", b"%", b"#", b"stream")
# pypdf raises on a number over 47 bytes, a name over 4,080, or (out of recursion) arrays
# some hundreds deep: a page that may hold one is parsed, for the walk to fail as pypdf's.
_NUMBER_BYTES = bytes.maketrans(b"+,-.0123456789", b"1" * 14)
_LONG_NAME = re.compile(rb"/[^%b]{2000}" % _DELIMS)
_MAX_OPENERS = 32
_PAGE_WINDOW = 16 * 1024


class _PageTree:
    """The page tree in pypdf's order, parsing a leaf page only when its own bytes might
    hold ``/AA`` or ``/Annots`` (flattening 352 page dictionaries in pure Python was 40 ms
    of freeculture.pdf's 65 ms walk). Anything unusual raises ``_Irregular``."""

    def __init__(self, reader: PdfReader, walk: _Walk) -> None:
        self.reader = reader
        self.walk = walk
        self.limit = get_configuration().page_tree_maximum_depth
        self.seen: set[tuple[int, int]] = set()

    def pages(self, root: Any) -> list[Any]:
        """Return the pages to walk, depth first from the root ``/Pages`` node."""
        if not isinstance(root, DictionaryObject) or root.get("/Type") != "/Pages":
            raise _Irregular("no /Pages root")
        found: list[Any] = []
        pending = [(self.kids(root), 0)]
        while pending:
            kids, depth = pending[-1]
            kid = next(kids, None)
            if kid is None:
                pending.pop()
            elif self.skippable(kid):
                self.walk.resolve(None)  # counted against the walk's budget, like a page
            elif (node := self.node(kid)).get("/Type") == "/Pages":
                if depth + 1 > self.limit:
                    raise _Irregular("page tree too deep")
                pending.append((self.kids(node), depth + 1))
            else:
                found.append(node)
        return found

    def kids(self, node: DictionaryObject) -> Any:
        """Iterate a node's ``/Kids``, which must be indirect references."""
        kids = node.get("/Kids")
        kids = kids.get_object() if isinstance(kids, IndirectObject) else kids
        if not isinstance(kids, ArrayObject) or not all(
            isinstance(kid, IndirectObject) for kid in kids
        ):
            raise _Irregular("/Kids is not an array of references")
        return iter(kids)

    def node(self, kid: IndirectObject) -> DictionaryObject:
        """Return a kid parsed by pypdf: a ``/Pages`` node (counted against the walk's
        budget here) or a ``/Page`` (counted when the walk visits it)."""
        self.first(kid)
        node = kid.get_object()
        kind = node.get("/Type") if isinstance(node, DictionaryObject) else None
        if kind not in ("/Page", "/Pages"):
            raise _Irregular("a kid is neither /Page nor /Pages")
        if kind == "/Pages":
            self.walk.resolve(None)
        return node

    def first(self, kid: IndirectObject) -> None:
        """Refuse a kid met twice (a loop, or a page listed twice)."""
        key = (kid.idnum, kid.generation)
        if key in self.seen:
            raise _Irregular("a kid is met twice")
        self.seen.add(key)

    def skippable(self, kid: IndirectObject) -> bool:
        """Tell whether the kid's bytes prove it a leaf page with no /AA and no /Annots."""
        reader, key = self.reader, (kid.generation, kid.idnum)
        if key in reader.resolved_objects or kid.idnum in reader.xref_objStm:
            return False  # already parsed, or compressed: pypdf's object is the truth
        offset = reader.xref.get(kid.generation, {}).get(kid.idnum)
        if not isinstance(offset, int) or reader.xref_free_entry.get(kid.generation, {}).get(
            kid.idnum
        ):
            return False
        reader.stream.seek(offset)
        window = reader.stream.read(_PAGE_WINDOW)
        end = window.find(b"endobj")
        match = _PLAIN_PAGE.fullmatch(window, 0, end + len(b"endobj")) if end > 0 else None
        if match is None or (int(match[1]), int(match[2])) != (kid.idnum, kid.generation):
            return False
        body = match[3]
        if any(marker in body for marker in _MAY_ACT) or not _PAGE_TYPE.search(body):
            return False
        if not _one_dictionary(body) or not _readable(body):
            return False
        self.first(kid)
        return True


def _readable(body: bytes) -> bool:
    """Tell whether pypdf surely reads ``body`` without raising."""
    if body.count(b"[") + body.count(b"<<") > _MAX_OPENERS:
        return False
    # 41 number bytes in a row: a number pypdf refuses (or within a name: parsed all the same).
    return b"1" * 41 not in body.translate(_NUMBER_BYTES) and _LONG_NAME.search(body) is None


def _one_dictionary(body: bytes) -> bool:
    """Tell whether ``body`` (from its first ``<<`` to its last ``>>``) is one dictionary:
    brackets only in pairs, balanced, closing only at the very end."""
    depth = 0
    tokens = _BRACKETS.findall(body)
    for index, token in enumerate(tokens):
        if token not in (b"<<", b">>"):
            return False  # a hex string: its bytes are not names
        depth += 1 if token == b"<<" else -1
        if depth == 0 and index != len(tokens) - 1:
            return False
    return depth == 0


def structure_event(path: str, password: str | None) -> dict[str, Any]:
    """Return the parse child's ``security`` event: the structure walk of the file."""
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            reader.decrypt(password or "")
        indicators = scan_structure(reader)
    except Exception:  # noqa: BLE001 - a file pypdf cannot open is reported, not fatal
        indicators = [_indicator(INCOMPLETE, 1, "structure")]
    return {"type": "security", "indicators": indicators}


def _indicator(key: str, count: int, source: str, obfuscated: bool = False) -> dict[str, Any]:
    return {"key": key, "count": count, "obfuscated": obfuscated, "source": source}


# --- verdict and policy -------------------------------------------------------------------


def assess(
    byte_scan: dict[str, Any] | None,
    structure: list[dict[str, Any]] | None,
    sha256: str,
    mime: str,
    antivirus: dict[str, Any],
) -> dict[str, Any]:
    """Build ``data.security`` from both scans (None = that scan did not run)."""
    unavailable = [_indicator("structure_unavailable", 1, "structure")]
    return {
        "risk": _risk(byte_scan, structure),
        "indicators": _byte_indicators(byte_scan)
        + (unavailable if structure is None else structure),
        "sha256": sha256,
        "mime": mime,
        "antivirus": antivirus,
    }


def _byte_indicators(scan: dict[str, Any] | None) -> list[dict[str, Any]]:
    if scan is None:
        return [_indicator("bytes_unavailable", 1, "bytes")]
    found = [
        _indicator(key, entry["count"], "bytes", entry["obfuscated"] > 0)
        for key, entry in sorted(scan["names"].items())
    ]
    if scan["eof_markers"] > 1:  # incremental updates: worth showing, not a risk
        found.append(_indicator("%%EOF", scan["eof_markers"], "bytes"))
    if scan["bytes_after_eof"]:
        found.append(_indicator("bytes_after_eof", scan["bytes_after_eof"], "bytes"))
    return found


def _risk(byte_scan: dict[str, Any] | None, structure: list[dict[str, Any]] | None) -> str:
    found = Counter({i["key"]: i["count"] for i in structure or []})
    names = byte_scan["names"] if byte_scan else {}
    walked = structure is not None and not found[INCOMPLETE]
    if _is_high(found, names, walked):
        return "high"
    if byte_scan is None or not walked:
        return "unknown"
    if _is_medium(found, names, byte_scan["bytes_after_eof"]):
        return "medium"
    return "low"


def _is_high(found: Counter[str], names: dict[str, Any], walked: bool) -> bool:
    if any(found[key] for key in _HIGH_STRUCTURE):
        return True
    if any(entry["obfuscated"] for entry in names.values()):
        return True
    return not walked and any(key in names for key in _HIGH_BYTES)


def _is_medium(found: Counter[str], names: dict[str, Any], bytes_after_eof: int) -> bool:
    if any(found[key] for key in _AUTO_TRIGGERS):
        return True
    # High names the complete walk did not reach: unreferenced, or somewhere it doesn't look.
    if any(key in names for key in _HIGH_BYTES):
        return True
    return "/JBIG2Decode" in names or bytes_after_eof > 0


def validate_features(names: list[str]) -> list[str]:
    """Return ``names`` when every one is a known feature; raise ValueError otherwise."""
    unknown = sorted(set(names) - FEATURES.keys())
    if unknown:
        known = ", ".join(sorted(FEATURES))
        raise ValueError(f"PDF_REJECT_FEATURES has unknown features {unknown}; known: {known}")
    return names


def rejected_features(security: dict[str, Any], reject: list[str]) -> list[str]:
    """Return the features in ``reject`` that the scanned file has, in ``reject`` order."""
    present = {i["key"] for i in security["indicators"] if i["count"] > 0}
    return [feature for feature in reject if FEATURES[feature] & present]
