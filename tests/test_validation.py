"""Upload and form checks, before anything is queued."""

from __future__ import annotations

import pytest

from config import Settings
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
from validation import (
    check_filename,
    check_upload_device,
    check_upload_file,
    check_user_id,
    parse_options,
    parse_pages_spec,
)


class TestPagesSpec:
    """'1,3,5-9' becomes 1-based inclusive ranges; anything else is invalid_pages_spec."""

    @pytest.mark.parametrize(
        ("spec", "ranges"),
        [
            (None, None),
            ("", None),
            ("all", None),
            ("1", ((1, 1),)),
            ("1,3,5-9", ((1, 1), (3, 3), (5, 9))),
            (" 2 - 4 , 7", ((2, 4), (7, 7))),
        ],
    )
    def test_valid(self, spec, ranges):
        assert parse_pages_spec(spec) == ranges

    @pytest.mark.parametrize("spec", ["0", "a", "3-1", "1,,2", "-2", "1-", "1.5", "99999999"])
    def test_invalid(self, spec):
        with pytest.raises(InvalidPagesSpec):
            parse_pages_spec(spec)


class TestOptions:
    """Form fields are typed and bounded; the password never reaches the stored options."""

    def test_defaults(self):
        options = parse_options({}, "a.pdf", Settings(redis_url=None))
        assert (options.extract_type, options.chunk_size, options.chunk_overlap) == (
            "all",
            1500,
            400,
        )
        assert options.include_tables is False and options.pages is None

    def test_filename_override_and_password_hidden(self):
        form = {"filename": "report.PDF", "password": "secret", "include_tables": "true"}
        options = parse_options(form, "upload.pdf", Settings(redis_url=None))
        assert options.filename == "report.PDF" and options.password == "secret"
        assert "password" not in options.public() and "secret" not in repr(options.public())
        assert options.wants_tables

    @pytest.mark.parametrize(
        "form",
        [
            {"chunk_size": "2001"},
            {"chunk_size": "x"},
            {"chunk_overlap": "1000"},
            {"extract_type": "images"},
            {"include_tables": "maybe"},
        ],
    )
    def test_bad_fields(self, form):
        with pytest.raises(InvalidField):
            parse_options(form, "a.pdf", Settings(redis_url=None))

    def test_overlap_default_shrinks_with_small_chunks(self):
        options = parse_options({"chunk_size": "300"}, "a.pdf", Settings(redis_url=None))
        assert options.chunk_overlap == 150

    def test_non_pdf_name(self):
        with pytest.raises(InvalidFileType):
            parse_options({}, "notes.txt", Settings(redis_url=None))


class TestUploadFile:
    """Stored uploads must be 100 bytes to MAX_UPLOAD_MB and start with %PDF-."""

    def test_real_pdf_passes(self, corpus):
        size = check_upload_file(corpus / "clean/minimal-document.pdf", Settings(redis_url=None))
        assert size == 16978

    def test_too_small(self, tmp_path):
        path = tmp_path / "a.pdf"
        path.write_bytes(b"%PDF-1.4 tiny")
        with pytest.raises(FileTooSmall):
            check_upload_file(path, Settings(redis_url=None))

    def test_header_not_at_byte_zero(self, tmp_path):
        path = tmp_path / "a.pdf"
        path.write_bytes(b" %PDF-1.4" + b"x" * 200)
        with pytest.raises(InvalidFileType):
            check_upload_file(path, Settings(redis_url=None))

    def test_too_large(self, tmp_path):
        path = tmp_path / "a.pdf"
        path.write_bytes(b"%PDF-1.4" + b"x" * (1024 * 1024 + 1))
        with pytest.raises(PayloadTooLarge):
            check_upload_file(path, Settings(redis_url=None, max_upload_mb=1))


class TestFilenames:
    """Names are decoded (percent-escapes, NFKC) before the rules apply."""

    @pytest.mark.parametrize(
        ("name", "kept"),
        [
            ("report.pdf", "report.pdf"),
            ("Q3 2024.v2.PDF", "Q3 2024.v2.PDF"),
            ("r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
            ("report\uff0epdf", "report.pdf"),  # full-width dot folds to "."
        ],
    )
    def test_accepted(self, name, kept):
        assert check_filename(name) == kept

    @pytest.mark.parametrize(
        "name",
        [
            "a/b.pdf", "a\\b.pdf", "..pdf", "x..y.pdf", "%2e%2e%2fx.pdf", "%252e%252e%252fx.pdf",
            "a\x00.pdf", "a%00.pdf", "a\x1b[31m.pdf", "a\u202efdp.exe", "a\u200b.pdf",
            "%ff.pdf", "x" * 252 + ".pdf",
        ],
    )  # fmt: skip
    def test_invalid_filename(self, name):
        with pytest.raises(InvalidFilename):
            check_filename(name)

    @pytest.mark.parametrize(
        "name", ["a.exe", "a.pdf.exe", "a.exe.pdf", "a.php .pdf", ".pdf", "pdf", "a.pdf%00.exe"]
    )
    def test_invalid_file_type(self, name):
        with pytest.raises((InvalidFileType, InvalidFilename)):
            check_filename(name)


class TestIdentityFields:
    def test_user_id_must_be_a_canonical_uuid(self):
        assert check_user_id(" 123E4567-E89B-12D3-A456-426614174000 ") == (
            "123e4567-e89b-12d3-a456-426614174000"
        )
        assert check_user_id("") is None
        for bad in ("42", "{123e4567-e89b-12d3-a456-426614174000}", "' OR 1=1 --"):
            with pytest.raises(InvalidUserId):
                check_user_id(bad)

    def test_upload_device_from_the_configured_list(self):
        settings = Settings(redis_url=None, allowed_upload_devices="web, kiosk")
        assert check_upload_device("Kiosk", settings) == "kiosk"
        with pytest.raises(InvalidUploadDevice):
            check_upload_device("mobile", settings)


def test_mime_is_read_from_the_bytes(tmp_path):
    gif = tmp_path / "x.pdf"
    gif.write_bytes(b"GIF89a" + b"\x00" * 200)
    with pytest.raises(InvalidMimeType):
        check_upload_file(gif, Settings(redis_url=None))
