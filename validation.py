"""Checks on an upload and its form fields, before anything is queued."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import magic

from config import Settings, split_list
from errors import (
    FileTooSmall,
    InvalidField,
    InvalidFilename,
    InvalidFileType,
    InvalidMimeType,
    InvalidPagesSpec,
    InvalidUploadDevice,
    InvalidUserId,
    PayloadTooLarge,
)

if TYPE_CHECKING:
    from nhost_auth import NhostIdentity

MIN_UPLOAD_BYTES = 100
PDF_MAGIC = b"%PDF-"
EXTRACT_TYPES = ("all", "text", "metadata", "tables")
MAX_CHUNK_SIZE = 2000
MIN_CHUNK_SIZE = 100
_PAGES_ITEM = re.compile(r"^(\d{1,7})(?:-(\d{1,7}))?$")
MAX_FILENAME_CHARS = 255
PDF_MIME = "application/pdf"
MIME_SNIFF_BYTES = 8192
# Inner extensions that make "x.exe.pdf" a disguise (shown as .exe by a careless viewer).
RISKY_INNER_EXTENSIONS = frozenset({
    "exe", "com", "bat", "cmd", "scr", "pif", "msi", "dll", "js", "jse", "vbs", "vbe", "wsf",
    "hta", "ps1", "sh", "php", "phtml", "jsp", "asp", "aspx", "html", "htm", "svg", "jar",
    "app", "lnk",
})  # fmt: skip
# Unicode categories refused in names: controls (Cc), format chars such as the RTL override
# and zero-width joiners (Cf), surrogates (Cs), private use (Co), unassigned (Cn).
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class JobOptions:
    """What the client asked for; everything but the password is kept on the job."""

    filename: str
    extract_type: str = "all"
    pages: tuple[tuple[int, int], ...] | None = None
    include_tables: bool = False
    chunk_size: int = 1500
    chunk_overlap: int = 400
    password: str | None = None
    user_id: str | None = None
    upload_device: str | None = None
    send_to_nhost: bool = False
    send_webhook: bool = False
    # Resolved by the API from the caller's credentials; held in memory only (it may carry
    # the end user's access token), never stored on the job.
    nhost_identity: NhostIdentity | None = None

    @property
    def wants_text(self) -> bool:
        """Return whether page text (and so chunks) is extracted."""
        return self.extract_type in ("all", "text", "tables")

    @property
    def wants_tables(self) -> bool:
        """Return whether tables are extracted."""
        return self.include_tables or self.extract_type == "tables"

    def public(self) -> dict:
        """Return the options as stored on the job: never the password."""
        fields = asdict(self)
        fields.pop("password")
        fields.pop("nhost_identity")
        fields["pages"] = [list(r) for r in self.pages] if self.pages else None
        return fields


def parse_pages_spec(spec: str | None) -> tuple[tuple[int, int], ...] | None:
    """Parse "1,3,5-9" into 1-based inclusive ranges; empty means every page."""
    if spec is None or not spec.strip() or spec.strip().lower() == "all":
        return None
    ranges = []
    for item in spec.replace(" ", "").split(","):
        match = _PAGES_ITEM.match(item)
        if not match:
            raise InvalidPagesSpec(f"'{item[:20]}' is not a page number or range like 5-9.")
        start = int(match.group(1))
        end = int(match.group(2) or start)
        if start < 1 or end < start:
            raise InvalidPagesSpec(f"'{item}' is not a valid range: pages start at 1, low-high.")
        ranges.append((start, end))
    return tuple(ranges)


def parse_bool(form: Mapping[str, str], name: str, default: bool = False) -> bool:
    """Read a boolean form field ("true"/"false"/"1"/"0"...)."""
    value = form.get(name)
    if value is None:
        return default
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidField(f"'{name}' must be true or false.", field=name)


_WAIT_SECONDS = re.compile(r"^\d{1,6}(\.\d{1,3})?$")


def parse_wait(args: Mapping[str, str], longest: float) -> float:
    """Read GET /job's ``wait`` (seconds to long-poll, 0 = answer at once), capped at
    ``longest``."""
    value = args.get("wait")
    if value is None or not value.strip():
        return 0.0
    if not _WAIT_SECONDS.match(value.strip()):
        raise InvalidField("'wait' must be a number of seconds, such as 25.", field="wait")
    return min(float(value), longest)


def parse_int(form: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Read an integer form field bounded to [low, high]."""
    value = form.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidField(f"'{name}' must be a whole number.", field=name) from None
    if not low <= number <= high:
        raise InvalidField(f"'{name}' must be between {low} and {high}.", field=name)
    return number


def parse_extract_type(form: Mapping[str, str], forced: str | None = None) -> str:
    """Read extract_type (a shortcut route forces it)."""
    value = forced or (form.get("extract_type") or "all").strip().lower()
    if value not in EXTRACT_TYPES:
        raise InvalidField(
            "'extract_type' must be one of all, text, metadata, tables.", field="extract_type"
        )
    return value


def decode_filename(name: str) -> str:
    """Undo percent-encoding (repeatedly: %2500 is %00) and fold Unicode look-alikes (NFKC)."""
    for _ in range(3):
        decoded = unquote(name, errors="strict") if "%" in name else name
        if decoded == name:
            break
        name = decoded
    return unicodedata.normalize("NFKC", name)


def check_filename(name: str | None) -> str:
    """Return the decoded upload name if it is safe and ends in .pdf (no double extension)."""
    try:
        name = decode_filename((name or "").strip())
    except UnicodeDecodeError:
        raise InvalidFilename("The file name is not valid UTF-8 once decoded.") from None
    if len(name) > MAX_FILENAME_CHARS:
        raise InvalidFilename(f"The file name is longer than {MAX_FILENAME_CHARS} characters.")
    if ".." in name or "/" in name or "\\" in name:
        raise InvalidFilename("The file name must not contain '..', '/' or '\\'.")
    if any(unicodedata.category(c) in _BAD_CATEGORIES for c in name):
        raise InvalidFilename("The file name contains control or invisible characters.")
    parts = name.lower().split(".")
    if len(parts) < 2 or parts[-1] != "pdf" or not name[:-4].strip():
        raise InvalidFileType("Only PDF files are accepted: the file name must end in .pdf.")
    if RISKY_INNER_EXTENSIONS & {part.strip() for part in parts[1:-1]}:
        raise InvalidFileType("The file name has a second, executable extension before .pdf.")
    return name


def check_user_id(value: str | None) -> str | None:
    """Return the user id in canonical lower-case UUID form (None when absent)."""
    value = (value or "").strip().lower()
    if not value:
        return None
    if not _UUID.match(value):
        raise InvalidUserId()
    return value


def check_upload_device(value: str | None, settings: Settings) -> str | None:
    """Return the upload device when it is one of ALLOWED_UPLOAD_DEVICES (None when absent)."""
    value = (value or "").strip().lower()
    if not value:
        return None
    allowed = [device.lower() for device in split_list(settings.allowed_upload_devices)]
    if value not in allowed:
        raise InvalidUploadDevice(f"'upload_device' must be one of {', '.join(allowed)}.")
    return value


def parse_options(
    form: Mapping[str, str],
    upload_name: str | None,
    settings: Settings,
    forced_type: str | None = None,
) -> JobOptions:
    """Build JobOptions from the multipart form fields, or raise a 400 error."""
    chunk_size = parse_int(
        form, "chunk_size", settings.default_chunk_size, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE
    )
    return JobOptions(
        filename=check_filename(form.get("filename") or upload_name),
        extract_type=parse_extract_type(form, forced_type),
        pages=parse_pages_spec(form.get("pages")),
        include_tables=parse_bool(form, "include_tables"),
        chunk_size=chunk_size,
        chunk_overlap=parse_int(
            form,
            "chunk_overlap",
            min(settings.default_chunk_overlap, chunk_size // 2),
            0,
            chunk_size // 2,
        ),
        password=form.get("password") or None,
        user_id=check_user_id(form.get("user_id")),
        upload_device=check_upload_device(form.get("upload_device"), settings),
        send_to_nhost=parse_bool(form, "send_to_nhost"),
        send_webhook=parse_bool(form, "send_webhook"),
    )


def detect_mime(path: Path) -> str:
    """Return libmagic's MIME type for the file's first bytes (never the client's claim)."""
    with path.open("rb") as handle:
        return magic.from_buffer(handle.read(MIME_SNIFF_BYTES), mime=True)


def check_upload_file(path: Path, settings: Settings) -> int:
    """Check a stored upload's size, MIME type and PDF header; return its size in bytes."""
    size = path.stat().st_size
    if size > settings.max_upload_bytes:
        raise PayloadTooLarge(f"The file is larger than {settings.max_upload_mb} MB.")
    if size < MIN_UPLOAD_BYTES:
        raise FileTooSmall(f"The file is {size} bytes: too small to be a PDF.")
    # libmagic is coarse (HTML before a PDF passes as application/pdf): the byte-0 check stays.
    if detect_mime(path) != PDF_MIME:
        raise InvalidMimeType("The file's content is not a PDF (checked by its bytes).")
    with path.open("rb") as handle:
        if handle.read(len(PDF_MAGIC)) != PDF_MAGIC:
            raise InvalidFileType("The file does not start with %PDF-: it is not a PDF.")
    return size
