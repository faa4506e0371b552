"""Command line: extract a PDF locally with the service's own pipeline, or talk to a server.

    python -m cli extract FILE.pdf [--pages 1-3] [--json|--text] [--chunks] [--password P]
    python -m cli submit FILE.pdf [--server URL] [--wait]
    python -m cli status JOB_ID [--server URL] [--wait]

Exit codes (for scripts):
    0  done: extracted, or the job completed
    1  the extraction failed (the job's error_code is printed on stderr)
    2  wrong usage (unknown option, missing argument)
    3  the input was refused: file missing or unreadable, not a PDF, bad --pages, ...
    4  the server could not be reached or answered with an error of its own (5xx, 401, ...)
    5  no such job
    6  the job has not finished (status without --wait, or --wait ran out of time)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import requests

import logs
from config import Settings, load_settings
from errors import ExtractorError, RequestError
from jobmanager import JobManager
from jobstore import JobStatus, JobTtls, MemoryJobStore
from validation import parse_options

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INPUT, EXIT_SERVER, EXIT_NOT_FOUND, EXIT_PENDING = range(7)
DEFAULT_SERVER = "http://127.0.0.1:5000"
PROGRESS_MIN_PAGES = 20  # shorter documents finish before a bar is worth drawing
POLL_S = 0.2
BAR_WIDTH = 30
TERMINAL = (JobStatus.COMPLETED.value, JobStatus.FAILED.value)


class CliError(Exception):
    """A failure that ends the command with an exit code and a sentence on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- local extraction


def form_fields(args: argparse.Namespace) -> dict[str, str]:
    """Return the same form fields the HTTP routes take, from the options given."""
    fields = {
        "pages": args.pages,
        "extract_type": args.extract_type,
        "password": args.password,
        "chunk_size": args.chunk_size,
        "chunk_overlap": args.chunk_overlap,
        "include_tables": "true" if args.tables else None,
    }
    return {name: str(value) for name, value in fields.items() if value is not None}


def extract_local(args: argparse.Namespace, settings: Settings) -> dict:
    """Run one job through JobManager on a memory store; return its final record."""
    path = Path(args.file)
    if not path.is_file():
        raise CliError(EXIT_INPUT, f"{path}: no such file")
    options = parse_options(form_fields(args), path.name, settings)
    store = MemoryJobStore(JobTtls.from_settings(settings))
    manager = JobManager(settings, store)
    try:
        with path.open("rb") as stream:
            job_id = manager.submit(stream, options)["job_id"]
        bar = ProgressBar(sys.stderr, enabled=args.progress)
        while not manager.wait(job_id, POLL_S):
            bar.show(store.get(job_id) or {})
        record = store.get(job_id) or {}
        bar.show(record)
        bar.done()
        return record
    finally:
        manager.shutdown()


class ProgressBar:
    """A one-line page counter on stderr, drawn only for long documents on a terminal."""

    def __init__(self, stream: TextIO, enabled: bool | None) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.drawn = False

    def show(self, record: dict) -> None:
        """Redraw the bar from a job record."""
        total, done = record.get("pages_total") or 0, record.get("pages_done") or 0
        if not self.enabled or total < PROGRESS_MIN_PAGES:
            return
        filled = BAR_WIDTH * done // total
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} pages")
        self.stream.flush()
        self.drawn = True

    def done(self) -> None:
        """End the bar's line."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def render_data(data: dict, as_text: bool, chunks_only: bool) -> str:
    """Return the result as JSON, or as plain text (pages split by form feeds)."""
    if chunks_only and as_text:
        return "\n".join(
            f"--- chunk {c['chunk_index']} (pages {c['start_page']}-{c['end_page']}) ---\n"
            f"{c['text']}"
            for c in data.get("chunks", [])
        )
    if as_text:
        pages = sorted(data.get("text", {}).values(), key=lambda page: page["page_number"])
        return "\f\n".join(page["text"] for page in pages)
    return json.dumps(data.get("chunks", []) if chunks_only else data, ensure_ascii=False, indent=2)


def run_extract(args: argparse.Namespace) -> int:
    """Extract a PDF locally and print the result."""
    settings = load_settings(redis_url=None)
    logs.configure_logging(
        settings.model_copy(update={"log_level": args.log_level, "log_format": "text"}),
        stream=sys.stderr,
    )
    try:
        record = extract_local(args, settings)
    except RequestError as error:
        raise CliError(EXIT_INPUT, f"{error.code}: {error.message}") from None
    if record.get("status") != JobStatus.COMPLETED.value:
        raise CliError(EXIT_FAILED, f"{record.get('error_code')}: {record.get('error')}")
    print(render_data(record["data"], args.text, args.chunks))
    return EXIT_OK


# ---------------------------------------------------------------- talking to a server


def session_for(args: argparse.Namespace) -> requests.Session:
    """Return a session sending the extra headers given with --header."""
    session = requests.Session()
    for header in args.header or []:
        name, _, value = header.partition(":")
        session.headers[name.strip()] = value.strip()
    return session


def call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> requests.Response:
    """Send one request to the server, turning transport failures into exit code 4."""
    url = args.server.rstrip("/") + path
    try:
        with session_for(args) as session:
            return session.request(method, url, timeout=args.request_timeout, **kwargs)
    except requests.RequestException as exc:
        raise CliError(EXIT_SERVER, f"cannot reach {args.server}: {type(exc).__name__}") from None


def body_of(response: requests.Response) -> dict:
    """Return the JSON body, or fail with exit code 4 when there is none."""
    try:
        body = response.json()
    except ValueError:
        raise CliError(EXIT_SERVER, f"HTTP {response.status_code} without a JSON body") from None
    return body if isinstance(body, dict) else {}


def check_answer(response: requests.Response) -> dict:
    """Map an error answer to its exit code; return the body of a good one."""
    body = body_of(response)
    status = response.status_code
    if status < 400:
        return body
    sentence = f"{body.get('error_code', status)}: {body.get('error', '')}"
    if status == 404:
        raise CliError(EXIT_NOT_FOUND, sentence)
    if status in (400, 413, 415, 422):
        raise CliError(EXIT_INPUT, sentence)
    raise CliError(EXIT_SERVER, sentence)


def poll(args: argparse.Namespace, job_id: str) -> dict:
    """Fetch a job once, or until it ends when --wait is given."""
    deadline = time.monotonic() + args.timeout
    while True:
        job = check_answer(call(args, "GET", f"/job/{job_id}"))
        if not args.wait or job.get("status") in TERMINAL or time.monotonic() > deadline:
            return job
        time.sleep(args.poll_interval)


def job_exit_code(job: dict) -> int:
    """Return the exit code for a job's status."""
    status = job.get("status")
    if status == JobStatus.COMPLETED.value:
        return EXIT_OK
    if status == JobStatus.FAILED.value:
        print(f"{job.get('error_code')}: {job.get('error')}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_PENDING


def run_submit(args: argparse.Namespace) -> int:
    """Upload a PDF to /extract/async; print the job (and wait for it with --wait)."""
    path = Path(args.file)
    if not path.is_file():
        raise CliError(EXIT_INPUT, f"{path}: no such file")
    with path.open("rb") as handle:
        files = {"file": (path.name, handle, "application/pdf")}
        accepted = check_answer(
            call(args, "POST", "/extract/async", data=form_fields(args), files=files)
        )
    if not args.wait:
        print(json.dumps(accepted, ensure_ascii=False))
        return EXIT_OK
    job = poll(args, accepted["job_id"])
    print(json.dumps(job, ensure_ascii=False))
    return job_exit_code(job)


def run_status(args: argparse.Namespace) -> int:
    """Print a job's state; the exit code says whether it completed, failed or is pending."""
    job = poll(args, args.job_id)
    print(json.dumps(job, ensure_ascii=False))
    return job_exit_code(job)


# ---------------------------------------------------------------- arguments


def add_job_options(parser: argparse.ArgumentParser) -> None:
    """Add the options shared by extract and submit (the form fields of the routes)."""
    parser.add_argument("file", help="the PDF")
    parser.add_argument("--pages", help="pages and ranges, e.g. 1-3,7 (default: all)")
    parser.add_argument("--password", help="for encrypted PDFs")
    parser.add_argument("--extract-type", choices=("all", "text", "metadata", "tables"))
    parser.add_argument("--tables", action="store_true", help="also extract tables (slow)")
    parser.add_argument("--chunk-size", type=int)
    parser.add_argument("--chunk-overlap", type=int)


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of the commands that talk to a server."""
    parser.add_argument(
        "--server",
        default=os.environ.get("PDF_EXTRACTOR_URL", DEFAULT_SERVER),
        help="base URL (default: $PDF_EXTRACTOR_URL or %(default)s)",
    )
    parser.add_argument("--header", action="append", help="extra header 'Name: value'")
    parser.add_argument("--wait", action="store_true", help="poll until the job ends")
    parser.add_argument("--timeout", type=float, default=600, help="seconds --wait may take")
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--request-timeout", type=float, default=60)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with its three commands."""
    parser = argparse.ArgumentParser(prog="python -m cli", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    extract = commands.add_parser("extract", help="extract a PDF here, with the service's pipeline")
    add_job_options(extract)
    shape = extract.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print JSON (the default)")
    shape.add_argument("--text", action="store_true", help="print plain text")
    extract.add_argument("--chunks", action="store_true", help="print the chunks only")
    extract.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    extract.add_argument("--log-level", default="WARNING")
    extract.set_defaults(run=run_extract)
    submit = commands.add_parser("submit", help="upload a PDF to a running server")
    add_job_options(submit)
    add_server_options(submit)
    submit.set_defaults(run=run_submit)
    status = commands.add_parser("status", help="show a job of a running server")
    status.add_argument("job_id")
    add_server_options(status)
    status.set_defaults(run=run_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    except ExtractorError as error:
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return EXIT_INPUT if isinstance(error, RequestError) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
