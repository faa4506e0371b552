"""Parse one PDF in this child process and stream JSON events, one per line, on stdout.

Run as ``python -m parse_child`` with the request as one JSON object on stdin (never argv:
it holds the password). Parser libraries are imported lazily, inside functions, so that
``apply_limits`` runs before any of them is loaded. Event shapes are described in
``extraction.py``, the parent side, which validates every line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import resource
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO

log = logging.getLogger("parse_child")

MAX_REQUEST_BYTES = 1024 * 1024
EXTRACT_TYPES = ("all", "text", "metadata", "tables")
METADATA_TEXT_KEYS = {
    "title": "Title",
    "author": "Author",
    "subject": "Subject",
    "creator": "Creator",
    "producer": "Producer",
}
METADATA_DATE_KEYS = {"creation_date": "CreationDate", "modification_date": "ModDate"}
# Longer lines are running headers or body text, not a title.
TITLE_MAX_CHARS = 80
TITLE_SENTENCE_WORDS = 4
TITLE_WRAP_CHARS = 60
TITLE_SCAN_LINES = 12

_LINE_BREAKS = re.compile(r"\r\n?")
# pdfium marks a hyphen it removed at a line end with U+FFFE (get_text_range) or \x02.
_HYPHEN_MARK = re.compile(r"(\S*)[\ufffe\x02](\S?)")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_PDF_DATE = re.compile(
    r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?"
    r"(?:([Zz])|([+-])(\d{2})'?(\d{2})?'?)?"
)
_PAGE_NUMBER_LINE = re.compile(r"^(?:page\s*)?[-–—\s]*[\divxlc]+[-–—\s]*(?:of\s*\d+)?$", re.I)
_DATE_LINE = re.compile(
    r"^(?:\w+,?\s+)?(?:\d{1,2}\.?\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w*"
    r"\.?\s+(?:\d{1,2},?\s+)?\d{4}$|^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$",
    re.I,
)


class ChildError(Exception):
    """A typed outcome that ends the parse with an ``error`` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    path: str
    password: str | None
    pages: list[tuple[int, int]] | None
    extract_type: str
    include_tables: bool
    max_pages: int

    @classmethod
    def from_json(cls, raw: bytes) -> Request:
        """Parse and check the stdin request."""
        data = json.loads(raw)
        pages = data.get("pages")
        request = cls(
            path=data["path"],
            password=data.get("password"),
            pages=None if pages is None else [(int(a), int(b)) for a, b in pages],
            extract_type=data.get("extract_type", "all"),
            include_tables=bool(data.get("include_tables", False)),
            max_pages=int(data.get("max_pages", 10000)),
        )
        if not isinstance(request.path, str) or request.extract_type not in EXTRACT_TYPES:
            raise ValueError("bad request fields")
        if request.password is not None and not isinstance(request.password, str):
            raise ValueError("bad password field")
        return request

    @property
    def wants_tables(self) -> bool:
        return self.include_tables or self.extract_type == "tables"


class EventWriter:
    """Write one flushed UTF-8 JSON line per event."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def emit(self, event: dict[str, Any]) -> None:
        """Write one event line."""
        line = _SURROGATES.sub("\ufffd", json.dumps(event, ensure_ascii=False))
        self._stream.write(line.encode("utf-8") + b"\n")
        self._stream.flush()

    def warn(self, message: str) -> None:
        """Write a warning event."""
        self.emit({"type": "warning", "message": message})


def apply_limits(request: Request | None) -> None:
    """Set this process's resource limits before any parser is imported."""
    # No core dumps: a crashing parser must not write the decrypted PDF to disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def configure_pypdf() -> None:
    """Raise pypdf 7's parsing limits to generous but bounded values."""
    import pypdf

    # pypdf 7 caps arrays and dictionaries at 100,000 elements; 2023_Q1_MSFT.pdf holds an
    # array of 109,548, so real 10-Q filings fail. 2,000,000 elements (a few hundred MB at
    # worst) and 20,000,000 content-stream tokens still stop a hostile file from growing
    # without bound. ``apply_configuration`` is a context manager; this process does one
    # parse, so ``overwrite_configuration`` sets the same values for its whole life.
    pypdf.overwrite_configuration(
        array_maximum_element_count=2_000_000,
        dictionary_maximum_element_count=2_000_000,
        stream_parsing_work_maximum_count=20_000_000,
    )


class PdfiumEngine:
    name = "pdfium"

    def __init__(self, path: str, password: str | None) -> None:
        import pypdfium2

        self.doc = pypdfium2.PdfDocument(path, password=password)

    @property
    def page_count(self) -> int:
        return len(self.doc)

    def page_text(self, index: int) -> str:
        """Return the raw text of one page, closing pdfium objects at once."""
        page = self.doc[index]
        try:
            textpage = page.get_textpage()
            try:
                return textpage.get_text_range()
            finally:
                textpage.close()
        finally:
            page.close()

    def metadata(self) -> dict[str, Any]:
        """Return metadata as pdfium reads it (the fallback when pypdf cannot)."""
        import pypdfium2.raw as pdfium_c

        info = self.doc.get_metadata_dict(skip_empty=True)
        version = self.doc.get_version()
        encrypted = pdfium_c.FPDF_GetSecurityHandlerRevision(self.doc) != -1
        return build_metadata(
            info.get, f"{version // 10}.{version % 10}" if version else None, encrypted
        )

    def close(self) -> None:
        self.doc.close()


class PdfminerEngine:
    name = "pdfminer"

    def __init__(self, path: str, password: str | None) -> None:
        from pdfminer.converter import PDFPageAggregator
        from pdfminer.layout import LAParams
        from pdfminer.pdfdocument import PDFDocument
        from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
        from pdfminer.pdfpage import PDFPage
        from pdfminer.pdfparser import PDFParser

        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            document = PDFDocument(PDFParser(self._file), password=password or "")
            self._pages = list(PDFPage.create_pages(document))
        except BaseException:
            self._file.close()
            raise
        manager = PDFResourceManager()
        self._device = PDFPageAggregator(manager, laparams=LAParams())
        self._interpreter = PDFPageInterpreter(manager, self._device)

    @property
    def page_count(self) -> int:
        return len(self._pages)

    def page_text(self, index: int) -> str:
        """Return the text of one page laid out by pdfminer."""
        from pdfminer.layout import LTTextContainer

        self._interpreter.process_page(self._pages[index])
        layout = self._device.get_result()
        return "".join(item.get_text() for item in layout if isinstance(item, LTTextContainer))

    def close(self) -> None:
        self._file.close()


class PypdfEngine:
    name = "pypdf"

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    @property
    def page_count(self) -> int:
        return len(self.reader.pages)

    def page_text(self, index: int) -> str:
        """Return the text of one page as pypdf extracts it."""
        return self.reader.pages[index].extract_text()

    def close(self) -> None:
        self.reader.close()


Engine = PdfiumEngine | PdfminerEngine | PypdfEngine


def open_engine(request: Request) -> Engine:
    """Open the document with pdfium, else pypdf (password) or pdfminer (damage)."""
    from pypdfium2 import PdfiumError

    try:
        return PdfiumEngine(request.path, request.password)
    except PdfiumError as exc:
        if is_password_error(exc):
            return open_with_pypdf(request)
        log.info("pdfium cannot open the file: %s", exc)
    return open_with_pdfminer(request)


def is_password_error(exc: Exception) -> bool:
    """Tell whether a PdfiumError means a missing or wrong password."""
    import pypdfium2.raw as pdfium_c

    return getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD


def password_error(request: Request) -> ChildError:
    """Return password_required or wrong_password, whichever applies."""
    if not request.password:
        return ChildError("password_required", "The PDF is encrypted and needs a password.")
    return ChildError("wrong_password", "The password does not open this PDF.")


def open_with_pypdf(request: Request) -> PypdfEngine:
    """Open a document pdfium refused a password for (e.g. AES-256 with SASLprep)."""
    from pypdf import PasswordType, PdfReader

    if not request.password:
        raise password_error(request)
    try:
        reader = PdfReader(request.path)
        opened = reader.decrypt(request.password) != PasswordType.NOT_DECRYPTED
    except Exception:
        log.info("pypdf cannot decrypt the file either", exc_info=True)
        opened = False
    if not opened:
        raise password_error(request)
    return PypdfEngine(reader)


def open_with_pdfminer(request: Request) -> PdfminerEngine:
    """Open a document pdfium cannot read with pdfminer.six, or fail as corrupt."""
    from pdfminer.pdfdocument import PDFPasswordIncorrect

    try:
        engine = PdfminerEngine(request.path, request.password)
    except PDFPasswordIncorrect:
        raise password_error(request) from None
    except Exception:
        log.info("pdfminer cannot open the file", exc_info=True)
        engine = None
    if engine is None or engine.page_count == 0:
        if engine is not None:
            engine.close()
        raise ChildError("corrupt_pdf", "The file is damaged and no parser could open it.")
    return engine


def build_metadata(get: Any, pdf_version: str | None, encrypted: bool) -> dict[str, Any]:
    """Build the metadata dict from a getter of raw Info values (keys without '/')."""
    metadata: dict[str, Any] = {
        name: clean_string(get(key)) for name, key in METADATA_TEXT_KEYS.items()
    }
    for name, key in METADATA_DATE_KEYS.items():
        raw = clean_string(get(key))
        metadata[name] = None if raw is None else pdf_date_to_iso(raw)
    metadata.update(pdf_version=pdf_version, encrypted=encrypted)
    return metadata


def clean_string(value: Any) -> str | None:
    """Return an Info value as a clean string, or None when empty."""
    if value is None:
        return None
    if hasattr(value, "get_object"):
        value = value.get_object()
    text = _CONTROL_CHARS.sub("", str(value)).strip()
    return text or None


def pdf_date_to_iso(raw: str) -> str:
    """Return a PDF date (D:YYYYMMDDHHmmSSOHH'mm') as ISO-8601, or the raw string."""
    match = _PDF_DATE.match(raw.strip())
    if not match:
        return raw
    year, month, day, hour, minute, second, zulu, sign, off_h, off_m = match.groups()
    tz = None
    if zulu:
        tz = dt.UTC
    elif sign:
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m or 0))
        tz = dt.timezone(-offset if sign == "-" else offset)
    month, day = int(month or 1), int(day or 1)
    clock = [int(v or 0) for v in (hour, minute, second)]
    try:
        return dt.datetime(int(year), month, day, *clock, tzinfo=tz).isoformat()
    except ValueError:
        return raw


def pypdf_metadata(reader: Any) -> dict[str, Any]:
    """Read metadata from an open (and decrypted) pypdf reader."""
    info = reader.metadata or {}
    version = re.match(r"%PDF-(\d\.\d)", reader.pdf_header)
    return build_metadata(
        lambda key: info.get("/" + key), version and version.group(1), reader.is_encrypted
    )


def read_pypdf_metadata(request: Request) -> dict[str, Any]:
    """Open the file with pypdf just for its metadata."""
    from pypdf import PdfReader

    with PdfReader(request.path) as reader:
        if reader.is_encrypted:
            reader.decrypt(request.password or "")
        return pypdf_metadata(reader)


def read_metadata(request: Request, engine: Engine, writer: EventWriter) -> dict[str, Any]:
    """Return metadata from pypdf, else pdfium (with a warning), else empty (warning)."""
    try:
        if isinstance(engine, PypdfEngine):
            return pypdf_metadata(engine.reader)
        return read_pypdf_metadata(request)
    except Exception:
        log.info("pypdf cannot read the metadata", exc_info=True)
    if isinstance(engine, PdfiumEngine):
        writer.warn("pypdf could not read the document information; pdfium's reading is used.")
        return engine.metadata()
    writer.warn("The document information (title, author, dates) could not be read.")
    return build_metadata(lambda key: None, None, False)


def infer_title(first_page_text: str) -> str | None:
    """Guess a title from the first heading-like lines of page 1 (at most two joined)."""
    picked: list[str] = []
    lines = [line.strip() for line in first_page_text.splitlines() if line.strip()]
    lines = lines[:TITLE_SCAN_LINES]
    for line, next_line in zip(lines, [*lines[1:], ""], strict=False):
        kind = classify_line(line, next_line)
        if kind == "heading":
            picked.append(line)
        if len(picked) == 2 or kind == "body" or (picked and kind != "heading"):
            break
    return " ".join(picked) or None


def classify_line(line: str, next_line: str) -> str:
    """Return 'heading' (could be a title), 'body' (text has begun) or 'noise'."""
    if line.endswith((".", ",", ";")) and len(line.split()) >= TITLE_SENTENCE_WORDS:
        return "body"  # a sentence or clause
    if len(line) >= TITLE_WRAP_CHARS and next_line[:1].islower():
        return "body"  # a long line running on into the next: a wrapped paragraph
    visible = [c for c in line if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if len(line) > TITLE_MAX_CHARS or letters < 2 or letters < len(visible) / 2:
        return "noise"
    if _PAGE_NUMBER_LINE.match(line) or _DATE_LINE.match(line):
        return "noise"
    return "heading"


def clean_text(raw: str) -> str:
    """Normalise line breaks, rejoin hyphenated words and drop control characters."""
    text = _LINE_BREAKS.sub("\n", raw)
    text = _HYPHEN_MARK.sub(_rejoin_hyphenated, text)
    return _CONTROL_CHARS.sub("", text)


def _rejoin_hyphenated(match: re.Match[str]) -> str:
    # Most marked hyphens split one word ("rela-tively"); keep the hyphen for compounds
    # that already have one, capitals, digits and lone letters ("Quarter-over-Quarter").
    left, right = match.group(1), match.group(2)
    word = left.rsplit("-", 1)[-1]
    keep = "-" in left or len(word) < 2 or not right or not right.islower()
    return f"{left}-{right}" if keep else left + right


class PageTexts:
    """Read page texts with the document's engine, falling back to pdfminer per page."""

    def __init__(self, engine: Engine, request: Request) -> None:
        self._engine = engine
        self._request = request
        self._fallback: PdfminerEngine | None = None
        self._fallback_tried = False
        self._cache: dict[int, tuple[str, str] | None] = {}

    def read(self, index: int, keep: bool = False) -> tuple[str, str] | None:
        """Return (text, engine name) for a 0-based page, or None when every engine fails."""
        if index in self._cache:
            return self._cache[index] if keep else self._cache.pop(index)
        result = self._read_with(self._engine, index) or self._read_with_fallback(index)
        if keep:
            self._cache[index] = result
        return result

    def _read_with(self, engine: Engine, index: int) -> tuple[str, str] | None:
        try:
            return clean_text(engine.page_text(index)), engine.name
        except Exception:
            log.info("%s failed on page %d", engine.name, index + 1, exc_info=True)
            return None

    def _read_with_fallback(self, index: int) -> tuple[str, str] | None:
        if isinstance(self._engine, PdfminerEngine):
            return None
        if not self._fallback_tried:
            self._fallback_tried = True
            try:
                self._fallback = PdfminerEngine(self._request.path, self._request.password)
            except Exception:
                log.info("pdfminer cannot open the file for a page fallback", exc_info=True)
        return None if self._fallback is None else self._read_with(self._fallback, index)

    def close(self) -> None:
        if self._fallback is not None:
            self._fallback.close()


class TableReader:
    """Extract tables with pdfplumber, opened once on first use."""

    def __init__(self, request: Request, writer: EventWriter) -> None:
        self._request = request
        self._writer = writer
        self._pdf: Any = None
        self._broken = False

    def page_tables(self, number: int) -> list[dict[str, Any]]:
        """Return the tables of a 1-based page (empty, with a warning, on failure)."""
        try:
            pdf = self._open()
            if pdf is None:
                return []
            page = pdf.pages[number - 1]
            try:
                tables = page.extract_tables()
            finally:
                page.close()
        except Exception:
            log.info("pdfplumber failed on page %d", number, exc_info=True)
            self._writer.warn(f"Tables could not be read on page {number}.")
            return []
        return [{"table_index": i, "rows": table_rows(t)} for i, t in enumerate(tables)]

    def _open(self) -> Any:
        if self._pdf is None and not self._broken:
            import pdfplumber

            try:
                self._pdf = pdfplumber.open(self._request.path, password=self._request.password)
            except Exception:
                log.info("pdfplumber cannot open the file", exc_info=True)
                self._broken = True
                self._writer.warn(
                    "Tables could not be read: the table parser cannot open this PDF."
                )
        return self._pdf

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()


def table_rows(table: list[list[Any]]) -> list[list[str | None]]:
    """Return table rows with every cell a string or None."""
    return [[None if cell is None else str(cell) for cell in row] for row in table]


def select_pages(request: Request, pages_total: int) -> list[int]:
    """Return the sorted 1-based pages to extract, checking the document's limits."""
    if pages_total == 0:
        raise ChildError("no_pages", "The PDF has no pages.")
    if pages_total > request.max_pages:
        raise ChildError(
            "too_many_pages",
            f"The PDF has {pages_total} pages; at most {request.max_pages} are accepted.",
        )
    if request.pages is None:
        return list(range(1, pages_total + 1))
    selected: set[int] = set()
    for start, end in request.pages:
        if start < 1 or end < start:
            raise ChildError("invalid_pages", f"The page range {start}-{end} is not valid.")
        if end > pages_total:
            raise ChildError(
                "invalid_pages",
                f"Page {end} was requested but the document has {pages_total} pages.",
            )
        selected.update(range(start, end + 1))
    return sorted(selected)


def emit_opened(
    request: Request, engine: Engine, texts: PageTexts, writer: EventWriter
) -> list[int]:
    """Check the page selection, read metadata and write the ``opened`` event."""
    selected = select_pages(request, engine.page_count)
    metadata = read_metadata(request, engine, writer)
    metadata["num_pages"] = engine.page_count
    metadata["title_inferred"] = False
    if not metadata["title"]:
        first_page = texts.read(0, keep=True)
        title = infer_title(first_page[0]) if first_page else None
        metadata.update(title=title, title_inferred=title is not None)
    writer.emit(
        {
            "type": "opened",
            "pages_total": engine.page_count,
            "selected": selected,
            "metadata": metadata,
            "engine": engine.name,
        }
    )
    return selected


def emit_pages(
    request: Request, selected: list[int], texts: PageTexts, writer: EventWriter
) -> None:
    """Write one ``page`` (or ``page_failed``) event per selected page."""
    tables = TableReader(request, writer) if request.wants_tables else None
    try:
        for number in selected:
            result = texts.read(number - 1)
            if result is None:
                writer.emit({"type": "page_failed", "page_number": number, "code": "parser_crash"})
                continue
            event = {"type": "page", "page_number": number, "text": result[0], "engine": result[1]}
            if tables is not None:
                event["tables"] = tables.page_tables(number)
            writer.emit(event)
    finally:
        if tables is not None:
            tables.close()


def run(request: Request, writer: EventWriter) -> None:
    """Open, describe and extract the document, ending with ``done``."""
    from riskscan import structure_event  # lazily, like every parser (after apply_limits)

    configure_pypdf()
    engine = open_engine(request)
    texts = PageTexts(engine, request)
    try:
        selected = emit_opened(request, engine, texts, writer)
        writer.emit(structure_event(request.path, request.password))
        if request.extract_type != "metadata":
            emit_pages(request, selected, texts, writer)
    finally:
        texts.close()
        engine.close()
    writer.emit({"type": "done"})


def take_stdout() -> BinaryIO:
    """Keep the real stdout for events and point fd 1 at stderr, so stray prints cannot
    corrupt the event stream."""
    events = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


class RedactingFormatter(logging.Formatter):
    """Format log records, tracebacks included, with the password blanked out."""

    def __init__(self, secret: str | None) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self._secret = secret

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(self._secret, "***") if self._secret else text


def configure_logging(password: str | None) -> None:
    """Send logs and Python warnings to stderr, never showing the password."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(password))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    log.setLevel(logging.INFO)
    logging.captureWarnings(True)


def main() -> int:
    """Read the request on stdin, parse, and stream events; return the exit status."""
    writer = EventWriter(take_stdout())
    configure_logging(None)
    try:
        request = Request.from_json(sys.stdin.buffer.read(MAX_REQUEST_BYTES))
        apply_limits(request)
        configure_logging(request.password)
        run(request, writer)
    except ChildError as exc:
        writer.emit({"type": "error", "code": exc.code, "message": exc.message})
    except Exception:
        log.error("the parse failed unexpectedly", exc_info=True)
        writer.emit({"type": "error", "code": "parser_crash", "message": "The PDF parser failed."})
    return 0


if __name__ == "__main__":
    sys.exit(main())
