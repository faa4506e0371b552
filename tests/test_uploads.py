"""The upload's file: anonymous and hashed while the parser writes it, linked (not copied)
into the job's directory; any other stream is copied and hashed as it is copied."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import request
from werkzeug.test import EnvironBuilder

from api import create_app
from config import load_settings
from jobs import UPLOAD_NAME, save_upload
from tests.pdf_factory import plain
from uploads import UploadFile


def written(directory, pieces: list[bytes]) -> UploadFile:
    upload = UploadFile.create(directory)
    assert upload is not None  # this machine's filesystems have O_TMPFILE
    for piece in pieces:
        upload.write(piece)
    upload.seek(0)
    return upload


def test_an_upload_file_has_no_name_until_it_is_linked(tmp_path):
    pieces = [b"%PDF-1.4\n", os.urandom(300_000), b"%%EOF\n"]
    upload = written(tmp_path, pieces)
    assert list(tmp_path.iterdir()) == []  # a killed worker would leave nothing
    assert upload.read() == b"".join(pieces)
    assert upload.sha256() == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert upload.link_to(tmp_path / "named.pdf")
    upload.close()
    assert (tmp_path / "named.pdf").read_bytes() == b"".join(pieces)


def test_an_upload_file_closed_unlinked_leaves_nothing(tmp_path):
    upload = written(tmp_path, [b"%PDF-1.4\n" * 1000])
    upload.close()
    assert upload.closed
    assert list(tmp_path.iterdir()) == []


def test_no_upload_file_where_the_directory_cannot_hold_one(tmp_path):
    assert UploadFile.create(tmp_path / "missing") is None


def test_save_upload_links_an_upload_file_and_copies_any_other_stream(tmp_path):
    settings = load_settings(upload_dir=str(tmp_path))
    data = plain()
    linked_dir, copied_dir = tmp_path / "linked", tmp_path / "copied"
    linked_dir.mkdir()
    copied_dir.mkdir()
    upload = written(tmp_path, [data])
    path, sha256 = save_upload(upload, linked_dir, settings)
    assert path == linked_dir / UPLOAD_NAME
    assert os.fstat(upload.fileno()).st_ino == path.stat().st_ino  # the same file
    upload.close()
    copied, copied_sha256 = save_upload(io.BytesIO(data), copied_dir, settings)
    assert copied.read_bytes() == path.read_bytes() == data
    assert sha256 == copied_sha256 == hashlib.sha256(data).hexdigest()


@contextmanager
def parsed_upload(upload_dir: Path, data: bytes) -> Iterator[Any]:
    """Parse a POST of ``data`` with the app's own request class; yield the file's stream."""
    app = create_app(load_settings(upload_dir=str(upload_dir), ratelimit_enabled=False))
    builder = EnvironBuilder(
        method="POST", path="/extract/async", data={"file": (io.BytesIO(data), "a.pdf")}
    )
    try:
        with app.request_context(builder.get_environ()):
            yield request.files["file"].stream
    finally:
        app.extensions["pdfx"].jobs.shutdown()


def test_the_api_parses_uploaded_files_into_upload_files(tmp_path):
    data = plain()
    with parsed_upload(tmp_path, data) as stream:
        assert isinstance(stream, UploadFile)
        assert stream.read() == data
        assert stream.sha256() == hashlib.sha256(data).hexdigest()
    assert stream.closed  # the request's end closes it: nothing is left in the directory
    assert list(tmp_path.iterdir()) == []


def test_the_api_keeps_werkzeugs_file_where_no_upload_file_can_be_made(tmp_path):
    data = plain()
    # O_TMPFILE fails in a missing directory, as on a filesystem without it.
    with parsed_upload(tmp_path / "missing", data) as stream:
        assert not isinstance(stream, UploadFile)
        assert stream.read() == data
