"""Parse one PDF in this child process and stream JSON events, one per line, on stdout.

Run as ``python -m parse_child [--warm] [--memory-mb N] [--cpu-s N] [--open-files N]`` with
the request as one JSON object on stdin (never argv: it holds the password). ``main`` sets
the resource limits before any parser library is loaded; with ``--warm`` it then imports
them and waits for the request. With ``--control-fd N`` the process is instead a zygote
(``forkserver``): limits, imports, then one forked child per request, each serving it exactly
as above. Engines live in ``pdf_engines``; event shapes are described in ``extraction.py``,
the parent side, which validates every line.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import re
import resource
import signal
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO

from page_split import ForkedHalf, PageDispenser, merged_events
from pdf_engines import (
    ChildError,
    Engine,
    MetadataProcess,
    PageTexts,
    PdfiumEngine,
    Request,
    TableReader,
    complete_metadata,
    fallback_metadata,
    incomplete_security_event,
    open_engine,
    pypdf_reader_of,
    read_metadata,
)

log = logging.getLogger("parse_child")

MAX_REQUEST_BYTES = 1024 * 1024
CPU_HARD_GRACE_S = 5
MEMORY_MESSAGE = "The PDF needs more memory than this service allows for one document."
_SURROGATES = re.compile(r"[\ud800-\udfff]")


class EventWriter:
    """Write one flushed UTF-8 JSON line per event."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def emit(self, event: dict[str, Any]) -> None:
        """Write one event line."""
        line = json.dumps(event, ensure_ascii=False)
        try:
            encoded = line.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: rare, so the regex runs only then
            encoded = _SURROGATES.sub("\ufffd", line).encode("utf-8")
        self._stream.write(encoded + b"\n")
        self._stream.flush()

    def warn(self, message: str) -> None:
        """Write a warning event."""
        self.emit({"type": "warning", "message": message})


@dataclass(frozen=True)
class Limits:
    """The child's resource limits, given on its command line (they hold no secret)."""

    memory_mb: int = 0  # 0 = no address-space limit
    cpu_s: int = 0  # 0 = no CPU-time limit
    open_files: int = 64
    control_fd: int | None = None  # the zygote's socket (forkserver); None = one request

    @classmethod
    def from_argv(cls, argv: list[str]) -> Limits:
        """Parse ``--memory-mb N --cpu-s N --open-files N [--control-fd N]`` (all optional)."""
        parser = argparse.ArgumentParser(prog="parse_child")
        parser.add_argument("--memory-mb", type=int, default=0)
        parser.add_argument("--cpu-s", type=int, default=0)
        parser.add_argument("--open-files", type=int, default=64)
        parser.add_argument("--warm", action="store_true")
        parser.add_argument("--control-fd", type=int, default=None)
        args = parser.parse_args(argv)
        return cls(args.memory_mb, args.cpu_s, args.open_files, args.control_fd)


def apply_limits(limits: Limits) -> None:
    """Set this process's resource limits before any parser is imported."""
    # No core dumps: a crashing parser must not write the decrypted PDF to disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The child writes no file. Ignoring SIGXFSZ turns a write (e.g. a .pyc, or a jbig2
    # temp file) into an EFBIG error instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    if limits.memory_mb:
        size = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    apply_cpu_limit(limits.cpu_s)


def apply_cpu_limit(cpu_s: int) -> None:
    """Limit this process's CPU time (0 = no limit)."""
    if cpu_s:
        # SIGXCPU at the soft limit; the kernel's SIGKILL at the hard one if it is ignored.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + CPU_HARD_GRACE_S))


def import_parsers() -> None:
    """Load and configure the parsers ahead of the request (a warm spare child does this
    while it waits, so the import leaves the job's critical path)."""
    import codecs

    import pypdf  # noqa: F401
    import pypdf.filters  # noqa: F401 - imported by pypdf on the first stream it decodes
    import pypdfium2  # noqa: F401

    import pypdf_lazy  # noqa: F401 - the metadata process's reader (and pypdf_plain)
    import riskscan  # noqa: F401 - the security structure walk (pypdf)

    # Each of these was imported anew by every job's metadata process, ~9 ms a job.
    codecs.lookup("utf-16-le")  # pypdf decodes text strings with it
    configure_pypdf()


def configure_pypdf() -> None:
    """Set pypdf 7's parsing limits to generous but bounded values, and no jbig2dec."""
    import pypdf

    # pypdf 7 caps arrays and dictionaries at 100,000 elements; 2023_Q1_MSFT.pdf holds an
    # array of 109,548, so real 10-Q filings fail. 2,000,000 elements (a few hundred MB at
    # worst) and 20,000,000 content-stream tokens still stop a hostile file from growing
    # without bound. Decompression stays at pypdf's 75 MB per stream; the page tree at 100
    # levels and 100,000 entries. ``jbig2dec_binary=None``: never run an external decoder.
    # ``apply_configuration`` is a context manager; this process does one parse, so
    # ``overwrite_configuration`` sets the values for its whole life.
    pypdf.overwrite_configuration(
        array_maximum_element_count=2_000_000,
        dictionary_maximum_element_count=2_000_000,
        stream_parsing_work_maximum_count=20_000_000,
        zlib_maximum_output_length=75_000_000,
        stream_decoding_work_maximum_length=300_000_000,
        page_tree_maximum_depth=100,
        page_tree_maximum_entries=100_000,
        outline_maximum_entries=100_000,
        jbig2dec_binary=None,
    )


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
    engine: Engine, selected: list[int], metadata: dict[str, Any], writer: EventWriter
) -> None:
    """Write the ``opened`` event."""
    event = {
        "type": "opened",
        "pages_total": engine.page_count,
        "selected": selected,
        "metadata": metadata,
        "engine": engine.name,
    }
    writer.emit(event)


def page_event(texts: PageTexts, number: int) -> dict[str, Any]:
    """Return the ``page`` (or ``page_failed``) event of one 1-based page."""
    result = texts.read(number - 1)
    if result is None:
        return {"type": "page_failed", "page_number": number, "code": texts.failure_code}
    return {"type": "page", "page_number": number, "text": result[0], "engine": result[1]}


def emit_pages(
    request: Request,
    selected: list[int],
    texts: PageTexts,
    writer: EventWriter,
    shared: PdfiumEngine | None = None,
) -> None:
    """Write one page event per selected page; with ``shared`` (pdfium's open document) a
    forked helper may share the pages after the first."""
    if shared is not None and split_wanted(request, selected):
        emit_shared_pages(request, selected, texts, writer, shared)
        return
    tables = TableReader(request, writer) if request.wants_tables else None
    try:
        for number in selected:
            event = page_event(texts, number)
            if tables is not None and event["type"] == "page":
                event["tables"] = tables.page_tables(number)
            writer.emit(event)
    finally:
        if tables is not None:
            tables.close()


def split_wanted(request: Request, selected: list[int]) -> bool:
    """Tell whether the document is large enough to share its pages with a helper (pdfium
    text only: tables and the fallback engines stay in one process)."""
    wanted = request.split_min_pages and len(selected) >= request.split_min_pages
    return bool(wanted) and not request.wants_tables and (os.cpu_count() or 1) >= 2


def emit_shared_pages(
    request: Request,
    selected: list[int],
    texts: PageTexts,
    writer: EventWriter,
    engine: PdfiumEngine,
) -> None:
    """Write the first page's event (its text gives the title), then fork a helper and
    write the rest, each read by whichever process takes it first."""
    writer.emit(page_event(texts, selected[0]))
    rest = selected[1:]
    own_event = functools.partial(page_event, texts)
    # Forked after the first page, the helper inherits what pdfium cached reading it.
    split = start_helper(request, rest, engine)
    if split is None:  # more pages than a pipe holds: the child reads them all
        for number in rest:
            writer.emit(own_event(number))
        return
    try:
        for event in merged_events(rest, own_event, split.helper, split.dispenser):
            writer.emit(event)
    finally:
        split.close()


@dataclass
class SplitRead:
    """A page helper and the dispenser it shares with the child."""

    helper: ForkedHalf
    dispenser: PageDispenser

    def close(self) -> None:
        """Stop the helper and close the child's end of the dispenser."""
        self.helper.close()
        self.dispenser.close()


def start_helper(request: Request, pages: list[int], engine: PdfiumEngine) -> SplitRead | None:
    """Fork a helper that takes ``pages`` from a dispenser shared with the child; None when
    they do not fit in a pipe."""
    dispenser = PageDispenser.create(pages)
    if dispenser is None:
        return None
    try:
        work = functools.partial(helper_work, request, engine, dispenser)
        return SplitRead(ForkedHalf(work), dispenser)
    except BaseException:
        dispenser.close()
        raise


def helper_work(request: Request, engine: PdfiumEngine, dispenser: PageDispenser, fd: int) -> None:
    """In the forked helper: write the events of the pages it takes on ``fd``. It reads the
    child's open document when that is in memory, else opens the file afresh (a fork shares
    file offsets, so the child's descriptor must not be used); its own page texts, so no
    fallback engine the child opened is touched."""
    writer = EventWriter(os.fdopen(fd, "wb"))
    if not engine.forkable:
        engine = PdfiumEngine(request.path, request.password)
    texts = PageTexts(engine, request)
    while (number := dispenser.take()) is not None:
        writer.emit(page_event(texts, number))


def run(request: Request, writer: EventWriter) -> None:
    """Open, describe and extract the document, ending with ``done``."""
    configure_pypdf()
    engine = open_engine(request)
    texts = PageTexts(engine, request)
    try:
        selected = select_pages(request, engine.page_count)
        if isinstance(engine, PdfiumEngine) and request.extract_type != "metadata":
            run_with_metadata_process(request, engine, selected, texts, writer)
        else:
            # One pypdf reading for both (a second open costs 80+ ms on a 10-Q filing).
            reader = pypdf_reader_of(request, engine)
            metadata = read_metadata(reader, engine, writer)
            emit_opened(engine, selected, complete_metadata(metadata, engine, texts), writer)
            writer.emit(security_event(request, reader))
            if request.extract_type != "metadata":
                emit_pages(request, selected, texts, writer)
        # Before closing: on ``done`` the parent kills the process group, so pdfium's close
        # (2-3 ms on a large file) no longer delays the job.
        writer.emit({"type": "done"})
    finally:
        texts.close()
        engine.close()


def run_with_metadata_process(
    request: Request,
    engine: PdfiumEngine,
    selected: list[int],
    texts: PageTexts,
    writer: EventWriter,
) -> None:
    """Announce the pages with pdfium's metadata at once; meanwhile read pypdf's metadata and
    the security structure walk in a forked process, and send them after the pages."""
    # Both forks (this one, then the page helper's) come before the helper's thread starts.
    reader = MetadataProcess(request, lambda pypdf_reader: security_event(request, pypdf_reader))
    try:
        preliminary = {**engine.metadata(), "num_pages": engine.page_count, "title_inferred": False}
        emit_opened(engine, selected, preliminary, writer)
        emit_pages(request, selected, texts, writer, shared=engine)
        metadata = reader.result() or fallback_metadata(engine, writer)
    finally:
        reader.close()
    # No reading at all: the process died or hung, so pypdf is not tried again here.
    writer.emit(reader.also_result or incomplete_security_event())
    writer.emit({"type": "metadata", "metadata": complete_metadata(metadata, engine, texts)})


def security_event(request: Request, reader: Any) -> dict[str, Any]:
    """Return the ``security`` event: riskscan's structure walk, on the metadata's reader
    when pypdf opened the file (else riskscan opens it and reports what it can)."""
    from riskscan import scan_structure, structure_event

    if reader is not None:
        try:
            return {"type": "security", "indicators": scan_structure(reader)}
        except Exception:
            log.info("the structure walk failed on the shared reader", exc_info=True)
    return structure_event(request.path, request.password)


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


def main(argv: list[str] | None = None) -> int:
    """Set limits, then serve one request from stdin, or (``--control-fd``) be the zygote."""
    argv = sys.argv[1:] if argv is None else argv
    limits = Limits.from_argv(argv)
    if limits.control_fd is not None:
        return run_zygote(limits)
    apply_limits(limits)
    return serve_request(warm="--warm" in argv)


def run_zygote(limits: Limits) -> int:
    """Import the parsers under the limits once, then fork a child per request."""
    import forkserver

    # RLIMIT_CPU counts each process's own time: set it in every child, not in the zygote,
    # whose small total grows for as long as its worker lives.
    apply_limits(dataclasses.replace(limits, cpu_s=0))
    configure_logging(None)
    import_parsers()
    return forkserver.serve(limits.control_fd, lambda: serve_forked_request(limits.cpu_s))


def serve_forked_request(cpu_s: int) -> int:
    """In a child forked by the zygote: set its CPU limit, then serve its request."""
    apply_cpu_limit(cpu_s)
    return serve_request(warm=False)  # the zygote imported and configured the parsers


def serve_request(warm: bool) -> int:
    """Read the request on stdin, parse, and stream events; return the exit status."""
    writer = EventWriter(take_stdout())
    configure_logging(None)
    try:
        if warm:
            import_parsers()
        raw = sys.stdin.buffer.read(MAX_REQUEST_BYTES)
        if not raw:
            return 0  # a spare child whose parent closed its stdin without a request
        request = Request.from_json(raw)
        configure_logging(request.password)
        run(request, writer)
    except ChildError as exc:
        writer.emit({"type": "error", "code": exc.code, "message": exc.message})
    except MemoryError:
        writer.emit({"type": "error", "code": "memory_limit", "message": MEMORY_MESSAGE})
    except Exception:
        log.error("the parse failed unexpectedly", exc_info=True)
        writer.emit({"type": "error", "code": "parser_crash", "message": "The PDF parser failed."})
    return 0


if __name__ == "__main__":
    sys.exit(main())
