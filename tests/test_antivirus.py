"""Antivirus: a real private clamd (tests/clamd_server.py), EICAR in a PDF, failure modes."""

from __future__ import annotations

import io
import os
import socket
import tracemalloc

import pdf_factory
import pyclamd
import pytest
from clamd_server import require_clamd, start_clamd

from antivirus import (
    DEFAULT_STREAM_MAX_BYTES,
    Antivirus,
    AntivirusUnavailable,
    MalwareDetected,
    TooLargeToScan,
    ensure_clean,
)
from config import load_settings
from errors import ExtractorError, PayloadTooLarge, ServiceUnavailable

SIGNATURE = "EicarTest.UNOFFICIAL"


def _antivirus(mode="closed", timeout=10.0, stream_max=DEFAULT_STREAM_MAX_BYTES, **where):
    where = {"clamav_socket": None, "clamav_host": None, **where}
    settings = load_settings(clamav_fail_mode=mode, clamav_timeout_s=timeout, **where)
    return Antivirus(settings, stream_max_bytes=stream_max)


def _unix(server, mode: str = "closed", stream_max: int = DEFAULT_STREAM_MAX_BYTES) -> Antivirus:
    return _antivirus(mode, stream_max=stream_max, clamav_socket=server.socket_path)


def _tcp(server, mode: str = "closed") -> Antivirus:
    return _antivirus(mode, clamav_host=server.host, clamav_port=server.port)


def _random_file(tmp_path, megabytes: float):
    path = tmp_path / "noise.bin"
    path.write_bytes(os.urandom(int(megabytes * 1024 * 1024)))
    return path


def test_not_configured_is_skipped(tmp_path):
    antivirus = _antivirus()
    path = pdf_factory.save(tmp_path, "a.pdf", pdf_factory.plain())
    assert antivirus.configured is False
    assert antivirus.version() is None
    assert antivirus.scan_file(str(path)) == {
        "status": "skipped",
        "signature": None,
        "engine": "clamav",
        "reason": "not_configured",
    }


@pytest.mark.clamd
@pytest.mark.parametrize("connect", [_unix, _tcp], ids=["unix", "tcp"])
def test_eicar_in_a_pdf_is_infected(clamd, tmp_path, connect):  # noqa: F811
    path = pdf_factory.save(tmp_path, "eicar.pdf", pdf_factory.eicar_pdf())
    result = connect(clamd).scan_file(str(path))
    assert result == {"status": "infected", "signature": SIGNATURE, "engine": "clamav"}
    with pytest.raises(MalwareDetected) as caught:
        ensure_clean(result)
    assert isinstance(caught.value, ExtractorError)
    assert (caught.value.code, caught.value.status) == ("malware_detected", 422)
    assert SIGNATURE in caught.value.to_body()["error"]


@pytest.mark.clamd
@pytest.mark.parametrize("connect", [_unix, _tcp], ids=["unix", "tcp"])
def test_clean_corpus_pdf_passes(clamd, corpus, connect):  # noqa: F811
    result = connect(clamd).scan_file(str(corpus / "clean" / "pdflatex-4-pages.pdf"))
    assert result == {"status": "clean", "signature": None, "engine": "clamav"}
    ensure_clean(result)


@pytest.mark.clamd
def test_version_answers(clamd):  # noqa: F811
    assert _unix(clamd).version().startswith("ClamAV 1.")


@pytest.mark.clamd
def test_large_file_is_streamed_in_chunks(clamd, tmp_path):  # noqa: F811
    path = _random_file(tmp_path, 20)
    tracemalloc.start()
    try:
        result = _unix(clamd).scan_file(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["status"] == "clean"
    assert peak < 2 * 1024 * 1024  # the 20 MB file never sits in memory


@pytest.mark.parametrize("where", ["socket", "tcp"])
def test_unreachable_closed_raises(tmp_path, where):
    antivirus = _unreachable(tmp_path, where, "closed")
    path = pdf_factory.save(tmp_path, "a.pdf", pdf_factory.plain())
    with pytest.raises(AntivirusUnavailable) as caught:
        antivirus.scan_file(str(path))
    assert isinstance(caught.value, ServiceUnavailable)
    assert (caught.value.code, caught.value.status) == ("antivirus_unavailable", 503)
    with pytest.raises(AntivirusUnavailable):
        antivirus.version()


@pytest.mark.parametrize("where", ["socket", "tcp"])
def test_unreachable_open_skips(tmp_path, where):
    antivirus = _unreachable(tmp_path, where, "open")
    path = pdf_factory.save(tmp_path, "a.pdf", pdf_factory.plain())
    result = antivirus.scan_file(str(path))
    assert result == {
        "status": "skipped",
        "signature": None,
        "engine": "clamav",
        "reason": "unreachable",
    }


def _unreachable(tmp_path, where: str, mode: str) -> Antivirus:
    if where == "socket":
        return _antivirus(mode, clamav_socket=str(tmp_path / "no-clamd.sock"))
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return _antivirus(mode, clamav_host="127.0.0.1", clamav_port=port)


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_silent_clamd_times_out(tmp_path, mode):
    # A listener that never accepts: connect and send succeed, the reply never comes.
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(str(tmp_path / "silent.sock"))
        silent.listen(1)
        antivirus = _antivirus(mode, timeout=0.5, clamav_socket=str(tmp_path / "silent.sock"))
        path = pdf_factory.save(tmp_path, "a.pdf", pdf_factory.plain())
        if mode == "closed":
            with pytest.raises(AntivirusUnavailable):
                antivirus.scan_file(str(path))
        else:
            assert antivirus.scan_file(str(path))["reason"] == "timeout"


@pytest.mark.clamd
def test_file_over_our_stream_limit_follows_fail_mode(clamd, tmp_path):  # noqa: F811
    path = _random_file(tmp_path, 1.5)
    with pytest.raises(TooLargeToScan) as caught:
        _unix(clamd, "closed", stream_max=1024 * 1024).scan_file(str(path))
    assert isinstance(caught.value, PayloadTooLarge)
    assert (caught.value.code, caught.value.status) == ("too_large_for_scanner", 413)
    result = _unix(clamd, "open", stream_max=1024 * 1024).scan_file(str(path))
    assert result == {
        "status": "error",
        "signature": None,
        "engine": "clamav",
        "reason": "too_large_for_scanner",
    }


@pytest.mark.clamd
def test_file_over_clamd_stream_limit_follows_fail_mode(tmp_path):
    # clamd's StreamMaxLength (1 MB) below our 25 MB default: clamd hangs up mid-stream.
    require_clamd()
    (tmp_path / "small").mkdir()
    server = start_clamd(tmp_path / "small", stream_max_mb=1)
    try:
        path = _random_file(tmp_path, 3)
        client = pyclamd.ClamdUnixSocket(server.socket_path, 10)
        with pytest.raises(BrokenPipeError):  # why antivirus.py streams on its own
            client.scan_stream(io.BytesIO(path.read_bytes()))
        client.clamd_socket.close()
        with pytest.raises(TooLargeToScan):
            _unix(server, "closed").scan_file(str(path))
        assert _unix(server, "open").scan_file(str(path))["reason"] == "too_large_for_scanner"
    finally:
        server.stop()
