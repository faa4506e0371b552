"""Risk scan: byte counts, structure walk, verdict and policy features, on built and real PDFs."""

from __future__ import annotations

from pathlib import Path

import pdf_factory
import pypdfium2
import pytest
from pypdf import PdfReader

import riskscan

# The clean corpus files that are not low, and why (every other clean file must be low):
# with-attachment.pdf carries an embedded file (in its /EmbeddedFiles name tree).
CLEAN_NOT_LOW = {"with-attachment.pdf": "high"}


def _write(tmp_path: Path, data: bytes, name: str = "doc.pdf") -> Path:
    return pdf_factory.save(tmp_path, name, data)


def _keys(indicators: list[dict]) -> dict[str, int]:
    return {i["key"]: i["count"] for i in indicators}


def _security(path: Path) -> dict:
    structure = riskscan.scan_structure(PdfReader(path))
    return riskscan.assess(riskscan.scan_bytes(str(path)), structure, "sha", "application/pdf", {})


# --- byte scan -----------------------------------------------------------------------------


def test_names_are_whole_tokens(tmp_path):
    path = _write(tmp_path, b"/JSFoo /JS/JavaScript/JS(x)/AAA /AA\n/EmbeddedFiles /URI>>")
    names = riskscan.scan_bytes(str(path))["names"]
    assert {k: v["count"] for k, v in names.items()} == {
        "/JS": 2,
        "/JavaScript": 1,
        "/AA": 1,
        "/URI": 1,
    }


def test_hex_escaped_names_are_decoded_and_flagged(tmp_path):
    path = _write(tmp_path, b"/J#61va#53cript /J#53 /Times#20New#20Roman /JS#20 /Launch")
    names = riskscan.scan_bytes(str(path))["names"]
    assert names == {
        "/JavaScript": {"count": 1, "obfuscated": 1},
        "/JS": {"count": 1, "obfuscated": 1},
        "/Launch": {"count": 1, "obfuscated": 0},
    }


@pytest.mark.parametrize("shift", [0, 1, 5, 11, 250, 255, 256, 257, 300])
def test_tokens_across_block_boundaries_count_once(tmp_path, shift):
    # Dense tokens over the first block boundary, and over the overlap cut before it.
    unit = b"/JavaScript %%EOF "
    body = b" " * (riskscan._BLOCK - 400 - shift) + unit * 60
    path = _write(tmp_path, body + b"\n")
    scan = riskscan.scan_bytes(str(path))
    assert scan["names"] == {"/JavaScript": {"count": 60, "obfuscated": 0}}
    assert scan["eof_markers"] == 60
    assert scan["size"] == len(body) + 1


@pytest.mark.parametrize("back", range(1, 15))
def test_hex_names_across_the_pieces_searched_for_them(tmp_path, back):
    # Only pieces holding a "#" are searched; a piece ends at a "/", never inside a name.
    filler = b"/Type /Page "
    start = riskscan._HEX_PIECE - back
    body = (filler * (start // len(filler) + 1))[:start] + b" /J#61vaScript /URI "
    body += filler * 3000 + b"/Launch#20 /Lau#6Ech"
    names = riskscan.scan_bytes(str(_write(tmp_path, body)))["names"]
    assert names == {
        "/JavaScript": {"count": 1, "obfuscated": 1},
        "/URI": {"count": 1, "obfuscated": 0},
        "/Launch": {"count": 1, "obfuscated": 1},
    }


@pytest.mark.parametrize(
    ("first", "order"),
    [(b"/J#61vaScript", ["/JS", "/JavaScript"]), (b"/URI", ["/URI", "/JS"])],
)
def test_a_slash_far_back_is_held_not_carried(tmp_path, monkeypatch, first, order):
    # A "/" then no other: carrying it would copy and search the file again with every block.
    monkeypatch.setattr(riskscan, "_BLOCK", 4096)
    buffers: list[int] = []
    cut = riskscan._cut

    def measured_cut(buf: bytes, holding: bool) -> tuple[int, int, int]:
        buffers.append(len(buf))
        return cut(buf, holding)

    monkeypatch.setattr(riskscan, "_cut", measured_cut)
    body = first + b" " + b"a" * 100_000 + b" /JS %%EOF\n"
    scan = riskscan.scan_bytes(str(_write(tmp_path, body)))
    assert max(buffers) < 4096 + 512
    # Counted where carrying it would count it: first in the last buffer, plain names first.
    assert list(scan["names"]) == order
    assert [entry["count"] for entry in scan["names"].values()] == [1, 1]
    assert (scan["eof_markers"], scan["bytes_after_eof"], scan["size"]) == (1, 0, len(body))


@pytest.mark.parametrize("start", range(4096 - 262, 4096 - 254))
def test_a_marker_counted_while_a_slash_is_held_reads_all_its_whitespace(
    tmp_path, monkeypatch, start
):
    # 256 bytes of whitespace after the last %%EOF are read, then the rest is data after it:
    # a marker ending this near the buffer's end is counted with the next buffer.
    monkeypatch.setattr(riskscan, "_BLOCK", 4096)
    body = b"/" + b"a" * (start - 1) + b"%%EOF" + b" " * 300 + b"X"
    scan = riskscan.scan_bytes(str(_write(tmp_path, body)))
    assert (scan["eof_markers"], scan["bytes_after_eof"]) == (1, 300 - 256 + 1)


def test_long_trailing_whitespace_is_not_data_after_eof(tmp_path, monkeypatch):
    monkeypatch.setattr(riskscan, "_BLOCK", 4096)
    body = pdf_factory.data_after_eof(b"MZ") + b" \r\n" * 5000
    scan = riskscan.scan_bytes(str(_write(tmp_path, body)))
    assert (scan["eof_markers"], scan["bytes_after_eof"], scan["size"]) == (1, 2, len(body))


def test_bytes_after_eof_ignore_trailing_whitespace(tmp_path):
    clean = riskscan.scan_bytes(str(_write(tmp_path, pdf_factory.plain() + b"\r\n \x00\n")))
    appended = riskscan.scan_bytes(str(_write(tmp_path, pdf_factory.data_after_eof(b"MZ 12345\n"))))
    assert (clean["eof_markers"], clean["bytes_after_eof"]) == (1, 0)
    assert (appended["eof_markers"], appended["bytes_after_eof"]) == (1, len(b"MZ 12345"))


def test_no_eof_marker_means_nothing_after_it(tmp_path):
    scan = riskscan.scan_bytes(str(_write(tmp_path, b"%PDF-1.7\ntruncated")))
    assert (scan["eof_markers"], scan["bytes_after_eof"]) == (0, 0)


# --- factory documents ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(pdf_factory.HOSTILE) + ["plain", "plain_form"])
def test_factory_pdfs_are_valid(tmp_path, name):
    build = pdf_factory.HOSTILE.get(name) or getattr(pdf_factory, name)
    path = _write(tmp_path, build())
    assert len(PdfReader(path, strict=True).pages) == 1
    document = pypdfium2.PdfDocument(str(path))
    try:
        assert "Hello from the factory" in document[0].get_textpage().get_text_range()
    finally:
        document.close()


EXPECTED_STRUCTURE = {
    "page_aa_javascript": {"javascript": 1, "page_aa": 1},
    "launch_link": {"launch": 1},
    "javascript_in_object_stream": {"javascript": 1, "open_action": 1},
    "obfuscated_javascript": {"javascript": 1, "open_action": 1},
    "embedded_file": {"embedded_file": 1},
    "file_attachment_annotation": {"embedded_file": 1},
    "next_chain_javascript": {"javascript": 1, "open_action": 1},
    "names_javascript": {"javascript": 1},
    "field_aa_javascript": {"acroform": 1, "field_aa": 1, "javascript": 1},
    "outline_javascript": {"javascript": 1},
}


@pytest.mark.parametrize("name", sorted(pdf_factory.HOSTILE))
def test_hostile_pdfs_are_high_risk(tmp_path, name):
    security = _security(_write(tmp_path, pdf_factory.HOSTILE[name]()))
    structure = [i for i in security["indicators"] if i["source"] == "structure"]
    assert _keys(structure) == EXPECTED_STRUCTURE[name]
    assert security["risk"] == "high"


def test_object_stream_hides_javascript_from_bytes_not_from_structure(tmp_path):
    path = _write(tmp_path, pdf_factory.javascript_in_object_stream())
    assert riskscan.scan_bytes(str(path))["names"] == {"/ObjStm": {"count": 1, "obfuscated": 0}}
    assert _keys(riskscan.scan_structure(PdfReader(path)))["javascript"] == 1


def test_obfuscated_name_is_reported_as_obfuscated(tmp_path):
    security = _security(_write(tmp_path, pdf_factory.obfuscated_javascript()))
    javascript = [i for i in security["indicators"] if i["key"] == "/JavaScript"]
    assert javascript == [{"key": "/JavaScript", "count": 1, "obfuscated": True, "source": "bytes"}]


def test_obfuscation_alone_is_high(tmp_path):
    # A hex-escaped /URI does nothing dangerous, but no honest writer escapes it.
    path = _write(tmp_path, pdf_factory.document(catalog=b"/Foo << /U#52I (x) >>"))
    assert _security(path)["risk"] == "high"


@pytest.mark.parametrize(
    ("build", "risk"),
    [
        (pdf_factory.plain, "low"),
        (pdf_factory.plain_form, "low"),
        (pdf_factory.data_after_eof, "medium"),
        (lambda: pdf_factory.document(catalog=b"/OpenAction [3 0 R /Fit]"), "low"),
        (
            lambda: pdf_factory.document(catalog=b"/OpenAction << /S /GoTo /D [3 0 R /Fit] >>"),
            "low",
        ),
        (
            lambda: pdf_factory.document(catalog=b"/OpenAction << /S /URI /URI (http://x) >>"),
            "medium",
        ),
        (lambda: pdf_factory.document(extra={6: pdf_factory.JS_ACTION}), "medium"),
        (lambda: pdf_factory.document(page=b"/X << /Filter /JBIG2Decode >>"), "medium"),
    ],
    ids=["plain", "form", "after-eof", "open-dest", "open-goto", "open-uri", "orphan-js", "jbig2"],
)
def test_risk_levels(tmp_path, build, risk):
    assert _security(_write(tmp_path, build()))["risk"] == risk


# --- bounds and failures -------------------------------------------------------------------


def test_object_budget_marks_the_walk_incomplete(tmp_path):
    reader = PdfReader(_write(tmp_path, pdf_factory.plain()))
    assert _keys(riskscan.scan_structure(reader, max_objects=2)) == {"structure_incomplete": 1}


def test_depth_bound_marks_the_walk_incomplete(tmp_path):
    reader = PdfReader(_write(tmp_path, pdf_factory.names_javascript()))
    assert "structure_incomplete" in _keys(riskscan.scan_structure(reader, max_depth=0))


def test_undecrypted_file_is_unknown_never_low(corpus):
    path = corpus / "encrypted" / "libreoffice-writer-password.pdf"
    structure = riskscan.scan_structure(PdfReader(path))
    security = riskscan.assess(riskscan.scan_bytes(str(path)), structure, "s", "m", {})
    assert _keys(structure) == {"structure_incomplete": 1}
    assert security["risk"] == "unknown"


def test_missing_structure_is_unknown_unless_bytes_show_high(tmp_path):
    plain = riskscan.scan_bytes(str(_write(tmp_path, pdf_factory.plain(), "a.pdf")))
    script = riskscan.scan_bytes(str(_write(tmp_path, pdf_factory.page_aa_javascript(), "b.pdf")))
    assert riskscan.assess(plain, None, "s", "m", {})["risk"] == "unknown"
    assert riskscan.assess(None, [], "s", "m", {})["risk"] == "unknown"
    assert riskscan.assess(script, None, "s", "m", {})["risk"] == "high"


def test_assess_shape(tmp_path):
    scan = riskscan.scan_bytes(str(_write(tmp_path, pdf_factory.launch_link())))
    antivirus = {"status": "clean", "signature": None, "engine": "clamav"}
    security = riskscan.assess(scan, [], "abc", "application/pdf", antivirus)
    assert security == {
        "risk": "medium",  # /Launch in the bytes that the (empty) walk did not confirm
        "indicators": [{"key": "/Launch", "count": 1, "obfuscated": False, "source": "bytes"}],
        "sha256": "abc",
        "mime": "application/pdf",
        "antivirus": antivirus,
    }


# --- the clean corpus ----------------------------------------------------------------------


def test_clean_corpus_is_low_except_known_files(corpus):
    risks = {path.name: _security(path)["risk"] for path in sorted(corpus.glob("clean/*.pdf"))}
    assert len(risks) >= 40
    assert {name: risk for name, risk in risks.items() if risk != "low"} == CLEAN_NOT_LOW


# --- policy features -----------------------------------------------------------------------


def test_feature_names():
    assert set(riskscan.FEATURES) == {
        "javascript", "launch", "embedded_file", "rich_media", "xfa",
        "open_action", "acroform", "jbig2", "uri",
    }  # fmt: skip
    assert riskscan.validate_features(["uri", "javascript"]) == ["uri", "javascript"]
    with pytest.raises(ValueError, match="macros"):
        riskscan.validate_features(["javascript", "macros"])


def test_rejected_features(tmp_path, corpus):
    reject = ["javascript", "uri", "acroform", "open_action", "embedded_file"]
    link = _security(corpus / "clean" / "libre-office-link.pdf")
    hidden = _security(_write(tmp_path, pdf_factory.javascript_in_object_stream()))
    attachment = _security(corpus / "clean" / "with-attachment.pdf")
    assert riskscan.rejected_features(link, reject) == ["uri"]
    assert riskscan.rejected_features(hidden, reject) == ["javascript", "open_action"]
    assert riskscan.rejected_features(attachment, reject) == ["embedded_file"]
    assert riskscan.rejected_features(attachment, []) == []


# --- the page tree: leaf pages read as bytes when they cannot act ----------------------------

ANNOTATION_JS = b"<< /Type /Annot /Subtype /Link /A " + pdf_factory.JS_ACTION + b" >>"


def _walk_like_pypdf(monkeypatch) -> None:
    """Make the walk flatten every page with pypdf, as before ``_PageTree``."""
    monkeypatch.setattr(riskscan._Walk, "pages_to_walk", lambda self, reader, catalog: reader.pages)


def _both_walks(path: Path, monkeypatch, password: str | None = None) -> tuple[dict, dict]:
    fast = riskscan.structure_event(str(path), password)
    with monkeypatch.context() as patched:
        _walk_like_pypdf(patched)
        slow = riskscan.structure_event(str(path), password)
    return fast, slow


def _corpus_files() -> list[tuple[str, str | None]]:
    from tests.conftest import corpus_manifest

    return [(entry["file"], entry.get("password")) for entry in corpus_manifest()]


@pytest.mark.parametrize(("name", "password"), _corpus_files())
def test_page_tree_walk_equals_pypdf_flatten_on_the_corpus(corpus, monkeypatch, name, password):
    fast, slow = _both_walks(corpus / name, monkeypatch, password)
    assert fast == slow


def test_page_tree_skips_pages_that_cannot_act(corpus, monkeypatch):
    reader = PdfReader(corpus / "clean" / "freeculture.pdf")
    walked: list = []
    original = riskscan._Walk.page
    monkeypatch.setattr(riskscan._Walk, "page", lambda self, page: walked.append(page))
    riskscan.scan_structure(reader)
    assert 0 < len(walked) < len(reader.pages) == 352  # the skip is real, the annotated kept
    monkeypatch.setattr(riskscan._Walk, "page", original)


# Pages whose bytes try to hide an acting key from a byte-level reader: every one must be
# parsed, so the walk finds what pypdf's flatten finds.
HIDING_PAGES = {
    "string_holding_endobj": b"/X (endobj) /Annots [6 0 R]",
    "comment_holding_endobj": b"% endobj\n/Annots [6 0 R]",
    "name_endobj": b"/endobj /Annots [6 0 R]",
    "dictionary_closed_early": b"/X <</Y 1>>endobj /Annots [6 0 R]",
    "hex_escaped_key": b"/Ann#6fts [6 0 R]",
    "hex_string_brackets": b"/X <656e646f626a> /Annots [6 0 R]",
    "page_aa": b"/AA << /O 6 0 R >>",
}
# Pages pypdf cannot read (it raises): the walk must fail on them as pypdf's does.
UNREADABLE_PAGES = {
    "long_number": b"/X " + b"1" * 100,
    "long_real_in_array": b"/X [1." + b"1" * 100 + b"]",
    "long_name": b"/X /" + b"N" * 4100,
    "nested_arrays": b"/X " + b"[" * 600 + b"]" * 600,
}


@pytest.mark.parametrize("name", sorted(UNREADABLE_PAGES))
def test_page_tree_parses_pages_pypdf_cannot_read(tmp_path, monkeypatch, name):
    path = _write(tmp_path, pdf_factory.document(page=UNREADABLE_PAGES[name]))
    fast, slow = _both_walks(path, monkeypatch)
    assert fast == slow
    assert _keys(fast["indicators"]) == {"structure_incomplete": 1}


@pytest.mark.parametrize("name", sorted(HIDING_PAGES))
def test_page_tree_parses_every_page_that_might_act(tmp_path, monkeypatch, name):
    action = ANNOTATION_JS if name != "page_aa" else pdf_factory.JS_ACTION
    path = _write(tmp_path, pdf_factory.document(page=HIDING_PAGES[name], extra={6: action}))
    fast, slow = _both_walks(path, monkeypatch)
    assert fast == slow


@pytest.mark.parametrize("name", ["hex_escaped_key", "page_aa", "string_holding_endobj"])
def test_page_tree_finds_javascript_behind_hiding_bytes(tmp_path, name):
    action = ANNOTATION_JS if name != "page_aa" else pdf_factory.JS_ACTION
    path = _write(tmp_path, pdf_factory.document(page=HIDING_PAGES[name], extra={6: action}))
    assert "javascript" in _keys(riskscan.structure_event(str(path), None)["indicators"])


def test_page_in_an_object_stream_is_parsed(tmp_path, monkeypatch):
    data = pdf_factory.document(page=b"/Annots [6 0 R]", extra={6: ANNOTATION_JS}, in_objstm=(3,))
    path = _write(tmp_path, data)
    fast, slow = _both_walks(path, monkeypatch)
    assert fast == slow and "javascript" in _keys(fast["indicators"])


def test_irregular_page_tree_falls_back_to_pypdf(tmp_path, monkeypatch):
    # A kid listed twice: pypdf's flatten decides what that means, not _PageTree.
    data = pdf_factory.document(page=b"/Annots [6 0 R]", extra={6: ANNOTATION_JS})
    data = data.replace(b"/Kids [3 0 R] /Count 1", b"/Kids [3 0 R 3 0 R] /Count 2")
    path = _write(tmp_path, data)
    fast, slow = _both_walks(path, monkeypatch)
    assert fast == slow


def test_xref_offset_at_another_object_is_not_trusted(tmp_path, monkeypatch):
    # The xref sends page 3 to a harmless decoy page (object 7); pypdf finds the header
    # wrong and repairs the offset to the real page 3, whose link runs JavaScript.
    decoy = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"
    data = pdf_factory.document(page=b"/Annots [6 0 R]", extra={6: ANNOTATION_JS, 7: decoy})
    real, fake = data.index(b"\n3 0 obj") + 1, data.index(b"\n7 0 obj") + 1
    data = data.replace(b"%010d 00000 n \n" % real, b"%010d 00000 n \n" % fake, 1)
    path = _write(tmp_path, data)
    fast, slow = _both_walks(path, monkeypatch)
    assert fast == slow and "javascript" in _keys(fast["indicators"])
