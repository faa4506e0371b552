"""The parse child's engines: open a PDF with pdfium, pypdf or pdfminer.six, read metadata,
page texts (falling back per page) and tables. Parser libraries are imported inside
functions, so importing this module loads none of them (the child sets its limits first).
"""

from __future__ import annotations

import ctypes
import json
import logging
import mmap
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from page_split import ForkedWork
from pdf_text import build_metadata, clean_text, infer_title

log = logging.getLogger("parse_child")

EXTRACT_TYPES = ("all", "text", "metadata", "tables")


class Warner(Protocol):
    """Anything that can emit a ``warning`` event."""

    def warn(self, message: str) -> None:
        """Emit one warning."""


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
    split_min_pages: int = 0

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
            split_min_pages=int(data.get("split_min_pages", 0)),
        )
        if not isinstance(request.path, str) or request.extract_type not in EXTRACT_TYPES:
            raise ValueError("bad request fields")
        if request.password is not None and not isinstance(request.password, str):
            raise ValueError("bad password field")
        return request

    @property
    def wants_tables(self) -> bool:
        """Return True when the request asks for tables."""
        return self.include_tables or self.extract_type == "tables"


def map_file(path: str) -> ctypes.Array | None:
    """Return the file's bytes as a private memory map (a ctypes buffer, as pdfium takes),
    or None when it cannot be mapped (empty, not a regular file, no address space left)."""
    try:
        with open(path, "rb") as handle:
            # ACCESS_COPY: ctypes needs a writable buffer; nothing writes, so nothing is copied.
            mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None
    return (ctypes.c_char * len(mapping)).from_buffer(mapping)


class PdfiumEngine:
    """pdfium's open document. It reads the file from a private memory map when it can:
    then a forked process may go on reading the same open document (``forkable``), with
    what pdfium has cached so far; a file it reads through a descriptor would share that
    descriptor's offset with the fork."""

    name = "pdfium"

    def __init__(self, path: str, password: str | None) -> None:
        import pypdfium2

        # The map lives as long as the document holds it (unmapped when both are freed).
        mapped = map_file(path)
        self.forkable = mapped is not None
        self.doc = pypdfium2.PdfDocument(path if mapped is None else mapped, password=password)

    @property
    def page_count(self) -> int:
        """Return the number of pages."""
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
        """Release the open document."""
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
        """Return the number of pages."""
        return len(self._pages)

    def page_text(self, index: int) -> str:
        """Return the text of one page laid out by pdfminer."""
        from pdfminer.layout import LTTextContainer

        self._interpreter.process_page(self._pages[index])
        layout = self._device.get_result()
        return "".join(item.get_text() for item in layout if isinstance(item, LTTextContainer))

    def close(self) -> None:
        """Release the open document."""
        self._file.close()


class PypdfEngine:
    name = "pypdf"

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    @property
    def page_count(self) -> int:
        """Return the number of pages."""
        return len(self.reader.pages)

    def page_text(self, index: int) -> str:
        """Return the text of one page as pypdf extracts it."""
        return self.reader.pages[index].extract_text()

    def close(self) -> None:
        """Release the open document."""
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


def pypdf_metadata(reader: Any) -> dict[str, Any]:
    """Read metadata from an open (and decrypted) pypdf reader."""
    info = reader.metadata or {}
    version = re.match(r"%PDF-(\d\.\d)", reader.pdf_header)
    return build_metadata(
        lambda key: info.get("/" + key), version and version.group(1), reader.is_encrypted
    )


def open_pypdf(request: Request) -> Any:
    """Return a pypdf reader of the file, decrypted when it is encrypted."""
    from pypdf_lazy import LazyObjStmReader

    reader = LazyObjStmReader(request.path)
    if reader.is_encrypted:
        reader.decrypt(request.password or "")
    return reader


def pypdf_reader_of(request: Request, engine: Engine) -> Any | None:
    """Return a pypdf reader of the file (the engine's own when pypdf reads the text), or
    None when pypdf cannot open it."""
    if isinstance(engine, PypdfEngine):
        return engine.reader
    try:
        return open_pypdf(request)
    except Exception:
        log.info("pypdf cannot open the file", exc_info=True)
        return None


def read_metadata(reader: Any | None, engine: Engine, writer: Warner) -> dict[str, Any]:
    """Return metadata from pypdf's ``reader``, else pdfium (with a warning), else empty
    (warning)."""
    if reader is not None:
        try:
            return pypdf_metadata(reader)
        except Exception:
            log.info("pypdf cannot read the metadata", exc_info=True)
    return fallback_metadata(engine, writer)


def fallback_metadata(engine: Engine, writer: Warner) -> dict[str, Any]:
    """Return pdfium's reading of the metadata, or empty metadata, with a warning."""
    if isinstance(engine, PdfiumEngine):
        writer.warn("pypdf could not read the document information; pdfium's reading is used.")
        return engine.metadata()
    writer.warn("The document information (title, author, dates) could not be read.")
    return build_metadata(lambda key: None, None, False)


# How long the child waits, after its last page, for the metadata process. pypdf's open and
# the bounded structure walk take 0.1-0.2 s on the largest real files (2023_Q1_MSFT.pdf),
# and they run while pdfium reads the pages, so 10 s is ample for a real document; yet it
# ends well before the parent's stall clock (30 s by default), so a pypdf stuck on a hostile
# file costs the job its pypdf metadata and structure walk (the fallbacks), never its pages.
METADATA_WAIT_S = 10.0


class MetadataProcess:
    """Read the metadata with pypdf in a forked process while pdfium reads the pages:
    pypdf is pure Python, and in a thread it would hold the GIL the page loop needs.
    ``also(reader)`` (the security structure walk) then runs there on the same reader (None
    if pypdf could not open the file), sparing a second xref pass. The process sends both
    back as one JSON line; a process that dies, hangs or garbles it reads as None for both."""

    def __init__(self, request: Request, also: Callable[[Any], Any]) -> None:
        # A fork keeps the forking thread's context, pypdf's configuration (our limits) too.
        self._process = ForkedWork(lambda fd: self._work(fd, request, also))
        self._readings: dict[str, Any] | None = None

    @staticmethod
    def _work(fd: int, request: Request, also: Callable[[Any], Any]) -> None:
        metadata, reader = None, None
        try:
            reader = open_pypdf(request)
            metadata = pypdf_metadata(reader)
        except Exception:
            log.info("pypdf cannot read the metadata", exc_info=True)
        readings = {"metadata": metadata, "also": also(reader)}
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(json.dumps(readings).encode("ascii") + b"\n")

    def _wait(self) -> dict[str, Any]:
        try:
            output = self._process.output(METADATA_WAIT_S)
        finally:
            self.close()
        if output is None:
            log.info("the metadata process sent nothing within %g s", METADATA_WAIT_S)
            return {}
        try:
            readings = json.loads(output)
        except ValueError:
            readings = None
        if not isinstance(readings, dict) or not isinstance(readings.get("metadata"), dict | None):
            log.info("the metadata process died or broke the protocol")
            return {}
        return readings

    def result(self) -> dict[str, Any] | None:
        """Wait for the readings; return the metadata, or None when pypdf failed."""
        if self._readings is None:
            self._readings = self._wait()
        return self._readings.get("metadata")

    @property
    def also_result(self) -> Any:
        """Return what ``also`` returned (after ``result``), or None if the process failed."""
        return (self._readings or {}).get("also")

    def close(self) -> None:
        """Kill the process if it still runs, and reap it."""
        self._process.close()


def incomplete_security_event() -> dict[str, Any]:
    """Return the ``security`` event of a structure walk that could not be completed."""
    from riskscan import INCOMPLETE

    indicator = {"key": INCOMPLETE, "count": 1, "obfuscated": False, "source": "structure"}
    return {"type": "security", "indicators": [indicator]}


def complete_metadata(metadata: dict[str, Any], engine: Engine, texts: PageTexts) -> dict:
    """Add the page count and, when the PDF names no title, one inferred from page 1."""
    metadata["num_pages"] = engine.page_count
    metadata["title_inferred"] = False
    if not metadata["title"]:
        first_page = texts.first_page()
        title = infer_title(first_page[0]) if first_page else None
        metadata.update(title=title, title_inferred=title is not None)
    return metadata


class PageTexts:
    """Read page texts with the document's engine, falling back to pdfminer per page."""

    def __init__(self, engine: Engine, request: Request) -> None:
        self._engine = engine
        self._request = request
        self._fallback: PdfminerEngine | None = None
        self._fallback_tried = False
        self._cache: dict[int, tuple[str, str] | None] = {}
        self._first: tuple[str, str] | None = None
        self._first_read = False
        self.failure_code = "parser_crash"

    def read(self, index: int, keep: bool = False) -> tuple[str, str] | None:
        """Return (text, engine name) for a 0-based page, or None when every engine fails."""
        if index in self._cache:
            return self._cache[index] if keep else self._cache.pop(index)
        self.failure_code = "parser_crash"
        result = self._read_with(self._engine, index) or self._read_with_fallback(index)
        if keep:
            self._cache[index] = result
        if index == 0:
            self._first, self._first_read = result, True
        return result

    def first_page(self) -> tuple[str, str] | None:
        """Return page 1's (text, engine), read once (kept for the title inference)."""
        return self._first if self._first_read else self.read(0, keep=True)

    def _read_with(self, engine: Engine, index: int) -> tuple[str, str] | None:
        try:
            return clean_text(engine.page_text(index)), engine.name
        except MemoryError:
            # Python's allocation failed under RLIMIT_AS; the page's objects are freed now.
            log.info("%s ran out of memory on page %d", engine.name, index + 1)
            self.failure_code = "memory_limit"
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
        """Release the open document."""
        if self._fallback is not None:
            self._fallback.close()


class TableReader:
    """Extract tables with pdfplumber, opened once on first use."""

    def __init__(self, request: Request, writer: Warner) -> None:
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
        """Release the open document."""
        if self._pdf is not None:
            self._pdf.close()


def table_rows(table: list[list[Any]]) -> list[list[str | None]]:
    """Return table rows with every cell a string or None."""
    return [[None if cell is None else str(cell) for cell in row] for row in table]
