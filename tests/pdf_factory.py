"""Build small PDFs with chosen (often hostile) features by writing PDF bytes directly.

Every document has the same one-page skeleton (objects 1-5: catalog, pages, page, content,
font); a builder adds catalog/page entries and extra objects numbered from 6. Objects can
be packed into a compressed object stream, which needs a cross-reference stream.
"""

from __future__ import annotations

import base64
import zlib
from pathlib import Path
from typing import Any

# The EICAR antivirus test file, base64-encoded so that this source file is not flagged.
EICAR = base64.b64decode(
    "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo="
)
JS_ACTION = b"<< /S /JavaScript /JS (app.alert\\(1\\);) >>"


def stream(data: bytes, entries: bytes = b"") -> bytes:
    """Return an uncompressed stream object body holding ``data``."""
    return b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(data), entries, data)


def document(
    catalog: bytes = b"",
    page: bytes = b"",
    extra: dict[int, bytes] | None = None,
    in_objstm: tuple[int, ...] = (),
    tail: bytes = b"",
    **objstm: Any,
) -> bytes:
    """Return a one-page PDF with extra catalog/page entries and extra objects (``objstm``:
    options of the object stream, see ``_with_xref_stream``)."""
    text = b"BT /F1 24 Tf 72 700 Td (Hello from the factory) Tj ET"
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R " + catalog + b" >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> " + page + b" >>",
        4: stream(text),
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        **(extra or {}),
    }
    if in_objstm:
        return _with_xref_stream(objects, set(in_objstm), **objstm) + tail
    return _with_xref_table(objects) + tail


def _header() -> bytearray:
    return bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")


def _write_objects(out: bytearray, objects: dict[int, bytes]) -> dict[int, int]:
    offsets = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, objects[num])
    return offsets


def _with_xref_table(objects: dict[int, bytes]) -> bytes:
    out = _header()
    offsets = _write_objects(out, objects)
    size = max(objects) + 1
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets[num] if num in offsets else b"0000000000 00000 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref_at)
    return bytes(out)


def _with_xref_stream(
    objects: dict[int, bytes],
    packed: set[int],
    appended: tuple[tuple[int, bytes], ...] = (),
    separator: bytes = b" ",
) -> bytes:
    """Pack ``packed`` into one /ObjStm; index everything with a /XRef stream. ``appended``
    (number, body) entries follow in the stream (a number may repeat one); ``separator``
    stands between the numbers of the stream's index."""
    stm_num, xref_num = max(objects) + 1, max(objects) + 2
    members = sorted(packed)
    bodies, header = b"", b""
    for num, body in [(num, objects[num]) for num in members] + list(appended):
        header += b"%d%s%d " % (num, separator, len(bodies))
        bodies += body + b"\n"
    packed_data = zlib.compress(header + bodies)
    loose = {n: body for n, body in objects.items() if n not in packed}
    loose[stm_num] = (
        b"<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>"
        % (
            len(members) + len(appended),
            len(header),
            len(packed_data),
        )
        + b"\nstream\n%s\nendstream" % packed_data
    )
    out = _header()
    offsets = _write_objects(out, loose)
    offsets[xref_num] = len(out)
    rows = [b"\x00" + (0).to_bytes(4, "big") + b"\xff\xff"]
    for num in range(1, xref_num + 1):
        if num in packed:
            rows.append(
                b"\x02" + stm_num.to_bytes(4, "big") + members.index(num).to_bytes(2, "big")
            )
        else:
            rows.append(b"\x01" + offsets[num].to_bytes(4, "big") + b"\x00\x00")
    data = zlib.compress(b"".join(rows))
    out += b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode " % (
        xref_num,
        xref_num + 1,
    )
    out += b"/Length %d >>\nstream\n%s\nendstream\nendobj\n" % (len(data), data)
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[xref_num]
    return bytes(out)


# --- the documents ---------------------------------------------------------------------


def plain() -> bytes:
    """Return a harmless one-page PDF."""
    return document()


def page_aa_javascript() -> bytes:
    """Return a PDF whose page runs JavaScript when opened (page /AA /O)."""
    return document(page=b"/AA << /O " + JS_ACTION + b" >>")


def launch_link() -> bytes:
    """Return a PDF with a link annotation that launches a program."""
    link = b"<< /Type /Annot /Subtype /Link /Rect [72 680 300 720] /Border [0 0 0] "
    link += b"/A << /S /Launch /F (cmd.exe) /Win << /F (cmd.exe) /P (/c calc) >> >> >>"
    return document(page=b"/Annots [6 0 R]", extra={6: link})


def javascript_in_object_stream() -> bytes:
    """Return a PDF whose catalog and open action (JavaScript) sit in a compressed /ObjStm."""
    return document(catalog=b"/OpenAction 6 0 R", extra={6: JS_ACTION}, in_objstm=(1, 6))


def obfuscated_javascript() -> bytes:
    """Return a PDF with an open action of type /J#61va#53cript (hex-escaped name)."""
    return document(catalog=b"/OpenAction << /S /J#61va#53cript /JS (app.alert\\(1\\);) >>")


def embedded_file() -> bytes:
    """Return a PDF with a file in the /EmbeddedFiles name tree."""
    spec = b"<< /Type /Filespec /F (notes.txt) /UF (notes.txt) /EF << /F 7 0 R >> >>"
    payload = stream(b"just some text", b"/Type /EmbeddedFile")
    names = b"/Names << /EmbeddedFiles << /Names [(notes.txt) 6 0 R] >> >>"
    return document(catalog=names, extra={6: spec, 7: payload})


def file_attachment_annotation() -> bytes:
    """Return a PDF with a file attachment annotation on its page."""
    annot = b"<< /Type /Annot /Subtype /FileAttachment /Rect [72 600 90 620] /FS 7 0 R >>"
    spec = b"<< /Type /Filespec /F (a.txt) /EF << /F 8 0 R >> >>"
    payload = stream(b"attached", b"/Type /EmbeddedFile")
    return document(page=b"/Annots [6 0 R]", extra={6: annot, 7: spec, 8: payload})


def next_chain_javascript() -> bytes:
    """Return a PDF whose open action is a /GoTo whose /Next chain (with a loop) runs JS."""
    goto = b"<< /S /GoTo /D [3 0 R /Fit] /Next 7 0 R >>"
    script = b"<< /S /JavaScript /JS (app.alert\\(2\\);) /Next [6 0 R 7 0 R] >>"
    return document(catalog=b"/OpenAction 6 0 R", extra={6: goto, 7: script})


def names_javascript() -> bytes:
    """Return a PDF with a document-level script in the /Names /JavaScript tree (with /Kids)."""
    names = b"/Names << /JavaScript 6 0 R >>"
    leaf = b"<< /Limits [(init) (init)] /Names [(init) " + JS_ACTION + b"] >>"
    return document(catalog=names, extra={6: b"<< /Kids [7 0 R] >>", 7: leaf})


def outline_javascript() -> bytes:
    """Return a PDF whose only bookmark runs JavaScript when clicked."""
    outlines = b"<< /Type /Outlines /First 7 0 R /Last 7 0 R /Count 1 >>"
    item = b"<< /Title (Start) /Parent 6 0 R /A " + JS_ACTION + b" >>"
    return document(catalog=b"/Outlines 6 0 R", extra={6: outlines, 7: item})


def field_aa_javascript() -> bytes:
    """Return a PDF with a text field whose keystroke action (/AA /K) is JavaScript."""
    field = b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (name) /Rect [72 500 300 520] "
    field += b"/P 3 0 R /AA << /K " + JS_ACTION + b" >> >>"
    return document(
        catalog=b"/AcroForm << /Fields [6 0 R] >>", page=b"/Annots [6 0 R]", extra={6: field}
    )


def plain_form() -> bytes:
    """Return a PDF with a plain text field and a submit button (no automatic action)."""
    text = b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (name) /Rect [72 500 300 520] /P 3 0 R >>"
    button = b"<< /Type /Annot /Subtype /Widget /FT /Btn /Ff 65536 /T (send) /P 3 0 R "
    button += b"/Rect [72 450 150 470] /A << /S /SubmitForm /F (https://example.org/f) >> >>"
    return document(
        catalog=b"/AcroForm << /Fields [6 0 R 7 0 R] >>",
        page=b"/Annots [6 0 R 7 0 R]",
        extra={6: text, 7: button},
    )


def data_after_eof(payload: bytes = b"MZ\x90\x00appended executable") -> bytes:
    """Return a plain PDF with bytes appended after its %%EOF."""
    return document(tail=payload)


def with_payload(data: bytes) -> bytes:
    """Return a plain PDF carrying ``data`` verbatim in an unreferenced uncompressed stream."""
    return document(extra={6: stream(data)})


def eicar_pdf() -> bytes:
    """Return a PDF that carries the EICAR antivirus test string."""
    return with_payload(EICAR)


def save(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/name`` and return the path."""
    path = directory / name
    path.write_bytes(data)
    return path


HOSTILE = {
    "page_aa_javascript": page_aa_javascript,
    "launch_link": launch_link,
    "javascript_in_object_stream": javascript_in_object_stream,
    "obfuscated_javascript": obfuscated_javascript,
    "embedded_file": embedded_file,
    "file_attachment_annotation": file_attachment_annotation,
    "next_chain_javascript": next_chain_javascript,
    "names_javascript": names_javascript,
    "field_aa_javascript": field_aa_javascript,
    "outline_javascript": outline_javascript,
}
