"""Generators of hostile PDFs for the isolation tests: bombs, spinners, loops and damage.

Each generator returns the file's bytes; ``build`` writes objects with a correct xref table,
so every file is well-formed except for the one hostile feature it carries.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable

FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
MiB = 1024 * 1024


def stream(data: bytes, entries: bytes = b"") -> bytes:
    """Return a stream object body holding ``data`` as given."""
    return b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(data), entries, data)


def text_content(line: str) -> bytes:
    """Return a content stream showing one line of text."""
    return stream(b"BT /F1 18 Tf 72 700 Td (%s) Tj ET" % line.encode("latin-1"))


def build(objects: dict[int, bytes], trailer: bytes = b"") -> bytes:
    """Write objects 1..n (1 must be the catalog) with an xref table and trailer."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, objects[num])
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets[num] if num in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R %s >>\n" % (size, trailer)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def pages_document(contents: list[bytes], title: str | None = None) -> bytes:
    """Return a document with one page per content stream object body (a flat page tree)."""
    first = 4
    kids, objects = [], {}
    for index, content in enumerate(contents):
        page, body = first + 2 * index, first + 2 * index + 1
        kids.append(b"%d 0 R" % page)
        objects[page] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % body
        )
        objects[body] = content
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    objects[3] = FONT
    trailer = b""
    if title is not None:
        info = max(objects) + 1
        objects[info] = b"<< /Title (%s) >>" % title.encode("latin-1")
        trailer = b"/Info %d 0 R" % info
    return build(objects, trailer)


def flate_bomb(inflated: int = 1024 * MiB) -> bytes:
    """A page whose ~1 MB FlateDecode content stream inflates to ``inflated`` bytes of spaces."""
    packer = zlib.compressobj(9)
    block = b" " * MiB
    packed = b"".join(packer.compress(block) for _ in range(inflated // MiB)) + packer.flush()
    bomb = stream(packed, b"/Filter /FlateDecode")
    return pages_document([text_content("Before the bomb"), bomb], title="Flate bomb")


def spinning_document(normal_first_page: bool = True, calls: int = 100_000) -> bytes:
    """A page that invokes a form XObject of 10,000 ``q Q`` pairs ``calls`` times: a few KB
    that keep pdfium parsing for minutes in little memory. With ``normal_first_page`` a
    text page comes first and an Info /Title spares it from title inference."""
    spinner = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R "
    spinner += b"/Resources << /XObject << /X 6 0 R >> >> >>"
    form = zlib.compress(b"q Q\n" * 10_000, 9)
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: FONT,
        4: spinner,
        5: stream(zlib.compress(b"q /X Do Q\n" * calls, 9), b"/Filter /FlateDecode"),
        6: stream(form, b"/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Filter /FlateDecode"),
    }
    kids, trailer = b"4 0 R", b""
    if normal_first_page:
        objects[7] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 8 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>"
        )
        objects[8] = text_content("A page before the spin")
        objects[9] = b"<< /Title (Spinner) >>"
        kids, trailer = b"7 0 R 4 0 R", b"/Info 9 0 R"
    count = len(kids.split()) // 3
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count)
    return build(objects, trailer)


def spinning_page() -> bytes:
    """Page 1 is normal; page 2 spins."""
    return spinning_document(normal_first_page=True)


def spinner_first() -> bytes:
    """The only page spins, and it is read before ``opened`` to infer a title."""
    return spinning_document(normal_first_page=False)


def nested_arrays(depth: int = 200_000) -> bytes:
    """A page whose /Annots (and the Info /Title) is 200k nested arrays."""
    nest = b"[" * depth + b"]" * depth
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        3: FONT,
        4: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R "
        b"/Resources << /Font << /F1 3 0 R >> >> /Annots 6 0 R >>",
        5: text_content("Nested arrays follow"),
        6: nest,
        7: b"<< /Title 6 0 R >>",
    }
    return build(objects, b"/Info 7 0 R")


def many_pages(count: int = 20_000) -> bytes:
    """A 20k-page document sharing one content stream (a flat page tree)."""
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: FONT, 4: text_content("Page")}
    kids = []
    for index in range(count):
        kids.append(b"%d 0 R" % (5 + index))
        objects[5 + index] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>"
        )
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), count)
    return build(objects)


def xref_prev_loop() -> bytes:
    """A one-page document whose trailer /Prev points at its own xref table."""
    doc = pages_document([text_content("The xref loops on itself")])
    start = doc.rindex(b"startxref")
    xref = int(doc[start:].split()[1])
    return build_with_prev(doc, xref)


def build_with_prev(doc: bytes, xref: int) -> bytes:
    """Insert ``/Prev xref`` into the last trailer of ``doc``."""
    at = doc.rindex(b"trailer\n<<") + len(b"trailer\n<<")
    return doc[:at] + b" /Prev %d" % xref + doc[at:]


def random_after_header(size: int = 256 * 1024, seed: int = 7) -> bytes:
    """``%PDF-1.7`` followed by random bytes."""
    return b"%PDF-1.7\n" + random.Random(seed).randbytes(size)


def truncations(data: bytes) -> list[tuple[int, bytes]]:
    """Return (percent, the first percent% of data) for 10%, 20%, ... 90%."""
    return [(pct, data[: len(data) * pct // 100]) for pct in range(10, 100, 10)]


GENERATORS: dict[str, Callable[[], bytes]] = {
    "flate_bomb": flate_bomb,
    "spinning_page": spinning_page,
    "spinner_first": spinner_first,
    "nested_arrays": nested_arrays,
    "many_pages": many_pages,
    "xref_prev_loop": xref_prev_loop,
    "random_after_header": random_after_header,
}
