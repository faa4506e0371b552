"""The PDF parse in a child process: real corpus PDFs, real child processes."""

from __future__ import annotations

import collections
import json
import logging
import re
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path

import pypdf
import pytest
from conftest import corpus_entry, corpus_manifest
from pypdf import get_configuration
from pypdf.generic import ArrayObject, NameObject, NumberObject

import errors
import parse_child
import pdf_engines
import pdf_text
import riskscan
from extraction import MAX_LINE_BYTES, PROJECT_DIR, ExtractionProcess, ExtractRequest, extract_all

TYPED_CODES = {
    "password_required", "wrong_password", "corrupt_pdf", "too_many_pages",
    "invalid_pages", "no_pages", "parser_crash",
}  # fmt: skip
# pdfium cannot open these; pdfminer.six recovers them.
RECOVERED_BY_PDFMINER = ("malformed/unreadablemetadata.pdf", "malformed/bug1606566.pdf")
# Measured token recall against the ground truth: 0.9944 (2201.00200) to 0.9998.
MIN_TRUTH_RECALL = 0.98
FOUR_PAGES = "clean/pdflatex-4-pages.pdf"


def entries(kind: str, max_pages: int | None = None) -> list[dict]:
    """Return manifest entries of one class (optionally with at most max_pages pages)."""
    found = [e for e in corpus_manifest() if e["class"] == kind]
    if max_pages is not None:
        found = [e for e in found if e["pypdfium2"].get("pages", max_pages + 1) <= max_pages]
    return found


def ids(entry: dict) -> str:
    return entry["file"].split("/")[-1]


def words(text: str) -> str:
    return " ".join(text.split())


def token_recall(ours: str, truth: str) -> float:
    """Return the share of the truth's word tokens (with multiplicity) found in ours."""
    ours_tokens = collections.Counter(re.findall(r"\w+", ours.lower()))
    truth_tokens = collections.Counter(re.findall(r"\w+", truth.lower()))
    return sum((ours_tokens & truth_tokens).values()) / sum(truth_tokens.values())


def run(corpus: Path, name: str, **options) -> dict:
    return extract_all(ExtractRequest(str(corpus / name), **options))


def error_of(corpus: Path, name: str, **options) -> errors.ExtractionError:
    with pytest.raises(errors.ExtractionError) as caught:
        run(corpus, name, **options)
    return caught.value


def fake_python(tmp_path: Path, body: str) -> str:
    """Write an executable stand-in for the child's interpreter."""
    script = tmp_path / "fake_python"
    script.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("entry", entries("clean", max_pages=20), ids=ids)
def test_clean_file_opens_with_its_pages_and_first_words(corpus, entry):
    result = run(corpus, entry["file"])
    expected = entry["pypdfium2"]
    assert result["opened"]["pages_total"] == expected["pages"]
    assert [p["page_number"] for p in result["pages"]] == list(range(1, expected["pages"] + 1))
    assert words(result["pages"][0]["text"]).startswith(words(expected["first_words"]))


SCORED = [
    e for e in corpus_manifest() if "ground_truth" in e and "not score" not in e.get("note", "")
]


@pytest.mark.parametrize("entry", SCORED, ids=ids)
def test_text_matches_ground_truth(corpus, entry):
    result = run(corpus, entry["file"])
    ours = "\n".join(page["text"] for page in result["pages"])
    truth = (corpus / entry["ground_truth"]).read_text()
    assert token_recall(ours, truth) >= MIN_TRUTH_RECALL


@pytest.mark.parametrize("entry", entries("encrypted"), ids=ids)
def test_encrypted_file_needs_its_password(corpus, entry):
    result = run(corpus, entry["file"], password=entry["password"])
    assert words(result["pages"][0]["text"]).startswith(words(entry["pypdfium2"]["first_words"]))
    assert result["opened"]["metadata"]["encrypted"] is True
    assert isinstance(error_of(corpus, entry["file"]), errors.PasswordRequired)
    assert isinstance(error_of(corpus, entry["file"], password="wrong"), errors.WrongPassword)


def test_aes256_password_pdfium_rejects_is_opened_by_pypdf(corpus, tmp_path):
    # AES-256 (revision 6) normalises passwords with SASLprep; pdfium does not, so the
    # decomposed (NFD) spelling of the password only opens through pypdf.
    writer = pypdf.PdfWriter(clone_from=corpus / FOUR_PAGES)
    writer.encrypt("pässwört", algorithm="AES-256")
    writer.write(tmp_path / "aes256.pdf")
    decomposed = unicodedata.normalize("NFD", "pässwört")
    result = run(tmp_path, "aes256.pdf", password=decomposed)
    assert result["opened"]["engine"] == "pypdf"
    assert {page["engine"] for page in result["pages"]} == {"pypdf"}
    assert result["pages"][0]["text"].startswith("Hello, here is some text")
    assert isinstance(error_of(tmp_path, "aes256.pdf", password="wrong"), errors.WrongPassword)


@pytest.mark.parametrize("entry", entries("image-only"), ids=ids)
def test_image_only_pages_have_empty_text(corpus, entry):
    result = run(corpus, entry["file"])
    assert result["pages"]
    assert all(page["text"].strip() == "" for page in result["pages"])


def run_with_deadline(corpus: Path, name: str, seconds: float) -> tuple[object, bool]:
    """Run a parse, killing it at the deadline; return (result or error, killed)."""
    process = ExtractionProcess(ExtractRequest(str(corpus / name)))
    killed = threading.Event()
    timer = threading.Timer(seconds, lambda: (killed.set(), process.kill()))
    with process:
        process.start()
        timer.start()
        try:
            outcome = list(process.events())
        except errors.ExtractionError as exc:
            outcome = exc
        finally:
            timer.cancel()
    return outcome, killed.is_set()


@pytest.mark.parametrize("entry", entries("malformed"), ids=ids)
def test_malformed_file_ends_in_done_or_a_typed_error(corpus, entry):
    outcome, killed = run_with_deadline(corpus, entry["file"], seconds=60)
    assert not killed
    if isinstance(outcome, errors.ExtractionError):
        assert outcome.code in TYPED_CODES
        assert entry["file"] not in RECOVERED_BY_PDFMINER
    else:
        kinds = [event["type"] for event in outcome if event["type"] != "warning"]
        assert kinds[0] == "opened"


@pytest.mark.parametrize("name", RECOVERED_BY_PDFMINER)
def test_pdfminer_recovers_files_pdfium_cannot_open(corpus, name):
    assert corpus_entry(name)["pypdfium2"]["opens"] is False
    result = run(corpus, name)
    assert result["opened"]["engine"] == "pdfminer"
    assert result["pages"][0]["engine"] == "pdfminer"
    assert result["pages"][0]["text"].strip()


def test_page_pdfium_cannot_load_is_reported_failed(corpus):
    result = run(corpus, "malformed/Pages-tree-refs.pdf")
    assert [page["page_number"] for page in result["pages"]] == [1]
    assert result["failed_pages"] == [
        {"type": "page_failed", "page_number": 2, "code": "parser_crash"}
    ]


def test_page_ranges_select_exactly_those_pages(corpus):
    result = run(corpus, FOUR_PAGES, pages=[(2, 3)])
    assert result["opened"]["selected"] == [2, 3]
    assert [page["page_number"] for page in result["pages"]] == [2, 3]


def test_page_beyond_the_document_is_invalid(corpus):
    error = error_of(corpus, FOUR_PAGES, pages=[(5, 5)])
    assert isinstance(error, errors.InvalidPages)
    assert "5" in error.message


def test_more_pages_than_allowed_is_refused(corpus):
    assert isinstance(error_of(corpus, FOUR_PAGES, max_pages=2), errors.TooManyPages)


def test_metadata_only_sends_no_pages(corpus):
    result = run(corpus, FOUR_PAGES, extract_type="metadata")
    assert result["opened"]["pages_total"] == 4
    assert result["pages"] == []


def test_large_10q_metadata_reads_without_warning(corpus):
    result = run(corpus, "clean/2023_Q1_MSFT.pdf", extract_type="metadata")
    metadata = result["opened"]["metadata"]
    assert result["warnings"] == []
    assert metadata["title"] == "Form 10-Q for Microsoft Corp filed 01/24/2023"
    assert metadata["creation_date"] == "2023-01-24T21:38:44+00:00"
    assert metadata["pdf_version"] == "1.7"
    assert metadata["num_pages"] == 72


def test_metadata_falls_back_to_pdfium_when_pypdf_fails(corpus):
    result = run(corpus, "malformed/PDFBOX-4352-0.pdf", extract_type="metadata")
    assert any("pdfium" in warning for warning in result["warnings"])
    assert result["opened"]["metadata"]["num_pages"] == 1


def test_tables_come_back_as_rows(corpus):
    result = run(corpus, "clean/2022_Q3_AAPL.pdf", pages=[(4, 4)], extract_type="tables")
    page = result["pages"][0]
    assert "Products" in page["text"]
    rows = [row for table in page["tables"] for row in table["rows"]]
    assert rows[0][:3] == ["Products", "$", "63,355"]


def test_tables_are_sent_only_when_asked(corpus):
    result = run(corpus, "clean/2022_Q3_AAPL.pdf", pages=[(4, 4)])
    assert "tables" not in result["pages"][0]


def test_missing_title_is_inferred_from_page_one(corpus):
    metadata = run(corpus, "clean/crazyones-pdfa.pdf", extract_type="metadata")["opened"][
        "metadata"
    ]
    assert metadata["title"] == "The Crazy Ones"
    assert metadata["title_inferred"] is True


def test_existing_title_is_kept(corpus):
    metadata = run(corpus, "clean/1601.03642.pdf", extract_type="metadata")["opened"]["metadata"]
    assert metadata["title"] == "Art in Machine Learning"
    assert metadata["title_inferred"] is False


def test_body_text_is_not_taken_for_a_title():
    assert (
        pdf_text.infer_title("Lorem ipsum dolor sit amet, consetetur sadipscing elitr,\nsed diam")
        is None
    )
    assert pdf_text.infer_title("1\nA Study of Things\nJane Doe\nAbstract. We study things.") == (
        "A Study of Things Jane Doe"
    )


def test_password_stays_out_of_argv_and_stderr(corpus):
    secret = "openpassword"
    path = str(corpus / "encrypted/libreoffice-writer-password.pdf")
    with ExtractionProcess(ExtractRequest(path, password=secret)) as process:
        process.start()
        argv = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert b"parse_child" in argv
        assert secret.encode() not in argv
        assert list(process.events())
    # An unexpected failure writes a traceback to stderr, still without the password.
    broken = ExtractRequest(path, password=secret, max_pages="many")  # type: ignore[arg-type]
    with ExtractionProcess(broken) as process, pytest.raises(errors.ParserCrash):
        list(process.events())
    assert "Traceback" in process.stderr_tail()
    assert secret not in process.stderr_tail()


def test_crash_report_blanks_the_password():
    formatter = parse_child.RedactingFormatter("s3cr3t")
    try:
        raise ValueError("cannot open with s3cr3t")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = formatter.format(record)
    assert "cannot open with ***" in text
    assert "s3cr3t" not in text


def test_kill_stops_a_long_parse(corpus):
    with ExtractionProcess(ExtractRequest(str(corpus / "clean/freeculture.pdf"))) as process:
        for event in process.events():
            if event["type"] == "page":
                assert Path(f"/proc/{process.pid}").exists()
                process.kill()
                break
        deadline = time.monotonic() + 2
        while Path(f"/proc/{process.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{process.pid}").exists()
        process.kill()  # idempotent


OPENED = {
    "type": "opened",
    "pages_total": 2,
    "selected": [1, 2],
    "engine": "pdfium",
    "metadata": {"encrypted": False, "title_inferred": False, "num_pages": 2},
}
PAGE_1 = {"type": "page", "page_number": 1, "text": "one", "engine": "pdfium"}
DONE = {"type": "done"}


def child_writing(*lines: object, exit_code: int = 0) -> str:
    """Return a fake child's source: each line is an event dict or a Python str expression."""
    writes = [
        f"sys.stdout.write({json.dumps(json.dumps(line)) if isinstance(line, dict) else line})\n"
        "sys.stdout.write('\\n')"
        for line in lines
    ]
    return "\n".join([*writes, "sys.stdout.flush()", f"sys.exit({exit_code})"])


def test_fake_child_with_good_output_is_accepted(tmp_path):
    python = fake_python(tmp_path, child_writing(OPENED, PAGE_1, DONE))
    with ExtractionProcess(ExtractRequest("unused.pdf"), python=python) as process:
        assert [event["type"] for event in process.events()] == ["opened", "page"]


OVERLONG_WARNING = f'\'{{"type": "warning", "message": "\' + \'x\' * {MAX_LINE_BYTES} + \'"}}\''


@pytest.mark.parametrize(
    "lines",
    [
        (OPENED, "'this is not json'", DONE),
        (OPENED, OVERLONG_WARNING, DONE),
        (OPENED, '\'{"type": "done"\'', DONE),
        (DONE,),
        (PAGE_1, DONE),
        (OPENED, {**PAGE_1, "page_number": 3}, DONE),
        (OPENED, PAGE_1, PAGE_1, DONE),
        (OPENED, {**PAGE_1, "text": 5}, DONE),
        (OPENED, {"type": "progress"}, DONE),
        ({**OPENED, "selected": [2, 1]}, DONE),
        (OPENED, PAGE_1),
    ],
    ids=[
        "garbage",
        "overlong",
        "truncated-json",
        "done-first",
        "page-first",
        "unselected-page",
        "repeated-page",
        "text-not-string",
        "unknown-type",
        "unsorted-selection",
        "no-end",
    ],  # fmt: skip
)
def test_bad_child_output_is_a_parser_crash(tmp_path, lines):
    python = fake_python(tmp_path, child_writing(*lines))
    with (
        ExtractionProcess(ExtractRequest("unused.pdf"), python=python) as process,
        pytest.raises(errors.ParserCrash),
    ):
        list(process.events())


def test_child_exiting_with_failure_is_a_parser_crash(tmp_path):
    python = fake_python(tmp_path, child_writing(OPENED, exit_code=1))
    with (
        ExtractionProcess(ExtractRequest("unused.pdf"), python=python) as process,
        pytest.raises(errors.ParserCrash),
    ):
        list(process.events())


def test_request_json_carries_every_field():
    request = ExtractRequest("/x.pdf", password="pw", pages=[(2, 3)], include_tables=True)
    assert json.loads(request.to_json()) == {
        "path": "/x.pdf",
        "password": "pw",
        "pages": [[2, 3]],
        "extract_type": "all",
        "include_tables": True,
        "max_pages": 10000,
        "split_min_pages": 0,
    }


def test_child_imports_no_parser_before_its_limits_are_set():
    probe = (
        "import sys, resource, parse_child\n"
        "parsers = ('pypdfium2', 'pypdf', 'pdfminer', 'pdfplumber')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in parsers))\n"
        "parse_child.apply_limits(parse_child.Limits(memory_mb=1024, cpu_s=60))\n"
        "print(list(resource.getrlimit(resource.RLIMIT_CORE)))\n"
    )
    assert run_fresh(probe).split("\n")[:2] == ["[]", "[0, 0]"]


def run_fresh(probe: str) -> str:
    """Run ``probe`` in a fresh interpreter in the project directory; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_a_parse_imports_nothing_the_zygote_did_not_import(corpus):
    # Every module a job imports is imported again by each forked child: the zygote must
    # hold them all. One process: the same calls a job's child and its forks make.
    probe = (
        "import sys, parse_child, pdf_engines\n"
        "parse_child.import_parsers()\n"
        "before = set(sys.modules)\n"
        f"request = pdf_engines.Request({str(corpus / 'clean/2022_Q3_INTC.pdf')!r}, None,"
        " None, 'all', False, 10000)\n"
        "reader = pdf_engines.open_pypdf(request)\n"
        "pdf_engines.pypdf_metadata(reader)\n"
        "parse_child.security_event(request, reader)\n"
        "engine = pdf_engines.open_engine(request)\n"
        "texts = pdf_engines.PageTexts(engine, request)\n"
        "parse_child.page_event(texts, 1)\n"
        "engine.metadata()\n"
        "ours = ('pypdf', 'pypdfium2', 'pypdf_lazy', 'pypdf_plain', 'riskscan', 'encodings')\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ours))\n"
    )
    assert run_fresh(probe).strip() == "[]"


# --- pypdf's metadata and structure walk in a forked process of the child ----------------

KILL_ITSELF = "lambda request: os.kill(os.getpid(), signal.SIGKILL)"


def child_with_pypdf_open(tmp_path: Path, replacement: str, *setup: str) -> str:
    """Write a stand-in interpreter running the real child with ``pdf_engines.open_pypdf``
    replaced (the metadata process calls it; the pages never do)."""
    return fake_python(
        tmp_path,
        "\n".join([
            "import os, signal, time",
            "sys.path.insert(0, os.getcwd())",
            "import pdf_engines",
            f"pdf_engines.open_pypdf = {replacement}",
            *setup,
            "import parse_child",
            "sys.exit(parse_child.main(sys.argv[3:]))",  # argv: -m parse_child --warm ...
        ]),
    )  # fmt: skip


def events_with(python: str, path: Path, **options) -> list[dict]:
    with ExtractionProcess(ExtractRequest(str(path), **options), python=python) as process:
        return list(process.events())


def kinds(events: list[dict]) -> list[str]:
    return [event["type"] for event in events if event["type"] != "page"]


def test_the_metadata_route_opens_the_file_with_pypdf_once(corpus, tmp_path):
    # The metadata and the structure walk share one reading: a second open raises here,
    # which would leave the walk incomplete (a plain pypdf open of a 10-Q costs 80+ ms).
    python = fake_python(
        tmp_path,
        "\n".join([
            "import os",
            "sys.path.insert(0, os.getcwd())",
            "import pypdf",
            "opened, pypdf_init = [], pypdf.PdfReader.__init__",
            "def once(self, *args, **kwargs):",
            "    if opened:",
            "        raise RuntimeError('pypdf opened the file twice')",
            "    opened.append(type(self).__name__)",
            "    pypdf_init(self, *args, **kwargs)",
            "pypdf.PdfReader.__init__ = once",
            "import parse_child",
            "sys.exit(parse_child.main(sys.argv[3:]))",
        ]),
    )  # fmt: skip
    events = events_with(python, corpus / "clean/with-attachment.pdf", extract_type="metadata")
    assert kinds(events) == ["opened", "security"]
    assert {i["key"] for i in events[1]["indicators"]} == {"embedded_file"}


@pytest.mark.parametrize("split_min_pages", [0, 2])
def test_a_killed_metadata_process_leaves_the_fallbacks(corpus, tmp_path, split_min_pages):
    python = child_with_pypdf_open(tmp_path, KILL_ITSELF)
    events = events_with(python, corpus / FOUR_PAGES, split_min_pages=split_min_pages)
    assert kinds(events) == ["opened", "warning", "security", "metadata"]
    assert [e["page_number"] for e in events if e["type"] == "page"] == [1, 2, 3, 4]
    assert "pdfium's reading is used" in events[5]["message"]
    assert events[6] == pdf_engines.incomplete_security_event()
    opened, final = events[0]["metadata"], events[7]["metadata"]
    assert final == {**opened, "title_inferred": final["title_inferred"]}  # pdfium's reading


def test_a_hanging_metadata_process_is_given_up_after_its_wait(corpus, tmp_path):
    python = child_with_pypdf_open(
        tmp_path, "lambda request: time.sleep(600)", "pdf_engines.METADATA_WAIT_S = 1.0"
    )
    start = time.monotonic()
    events = events_with(python, corpus / FOUR_PAGES)
    assert time.monotonic() - start < 20
    assert kinds(events) == ["opened", "warning", "security", "metadata"]
    assert events[6]["indicators"][0]["key"] == riskscan.INCOMPLETE


def test_pypdf_failing_in_the_metadata_process_leaves_todays_fallbacks(corpus, tmp_path):
    # As when pypdf cannot open the file: pdfium's metadata, and riskscan's own reading.
    python = child_with_pypdf_open(tmp_path, "lambda request: 1 / 0")
    events = events_with(python, corpus / "clean/with-attachment.pdf")
    assert kinds(events) == ["opened", "warning", "security", "metadata"]
    path = str(corpus / "clean/with-attachment.pdf")
    assert events[-2] == riskscan.structure_event(path, None)
    assert {i["key"] for i in events[-2]["indicators"]} == {"embedded_file"}


def test_the_metadata_process_reads_with_the_childs_pypdf_limits(corpus, tmp_path):
    # An Info dictionary holding an array of 150,000 numbers: over pypdf's default limit
    # (100,000), within the child's (configure_pypdf), which the forked process keeps.
    writer = pypdf.PdfWriter(clone_from=corpus / FOUR_PAGES)
    writer.add_metadata({"/Title": "Many numbers"})
    writer._info.get_object()[NameObject("/Numbers")] = ArrayObject([NumberObject(7)] * 150_000)
    writer.write(tmp_path / "big-info.pdf")
    with (
        pypdf.apply_configuration(pypdf.Configuration()),
        pytest.raises(pypdf.errors.LimitReachedError),
    ):
        _ = pypdf.PdfReader(tmp_path / "big-info.pdf").metadata
    result = run(tmp_path, "big-info.pdf")
    assert result["warnings"] == []
    assert result["opened"]["metadata"]["title"] == "Many numbers"


def test_a_forked_metadata_process_keeps_the_pypdf_configuration(corpus):
    request = pdf_engines.Request(str(corpus / FOUR_PAGES), None, None, "all", False, 10)
    with pypdf.apply_configuration(array_maximum_element_count=1_234_567):
        process = pdf_engines.MetadataProcess(
            request, lambda reader: [get_configuration().array_maximum_element_count, reader.xref]
        )
    try:
        assert process.result()["title"] is None
        assert process.also_result[0] == 1_234_567
    finally:
        process.close()


def test_the_incomplete_security_event_is_riskscans(tmp_path):
    (tmp_path / "not.pdf").write_bytes(b"%PDF-1.7\nnot a pdf at all\n")
    assert pdf_engines.incomplete_security_event() == riskscan.structure_event(
        str(tmp_path / "not.pdf"), None
    )


@pytest.mark.parametrize(
    ("text", "sent"),
    [("plain é text", "plain é text"), ("a\ud800b\udfffc", "a\ufffdb\ufffdc")],
)
def test_event_writer_replaces_lone_surrogates_only(text, sent):
    import io

    stream = io.BytesIO()
    parse_child.EventWriter(stream).emit({"type": "page", "page_number": 1, "text": text})
    line = stream.getvalue()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["text"] == sent
