"""Scan uploads with ClamAV (clamd), over a Unix socket or TCP.

Settings: ``clamav_socket`` or ``clamav_host``/``clamav_port`` (neither = not configured,
every scan is skipped), ``clamav_timeout_s``, ``clamav_fail_mode``.

Files are streamed with this module's own INSTREAM client (``zINSTREAM``, the file in
64 KB chunks, each prefixed by its 4-byte big-endian length, a zero length to finish),
never whole in memory. PING and VERSION go through the same small client. pyclamd 0.4.0
(pinned) was tried first and is not used at run time, for three defects seen against a
real clamd 1.4 (tests/test_antivirus.py shows the second): it writes with
``socket.send``, where a partial write corrupts the chunk framing; it lets
``BrokenPipeError`` escape when clamd hangs up on a stream over ``StreamMaxLength``; and
it leaks a socket on every failed connect (``ResourceWarning``).

clamd has no command that reports its ``StreamMaxLength``, so the file size is checked
first against ``stream_max_bytes`` (setting ``clamav_stream_max_mb``, default 25 MB,
clamd's own default: set it to your clamd.conf's value). Should clamd's limit still be
lower, its "size limit exceeded" reply is read after the hang-up and handled the same way.

Failures follow ``clamav_fail_mode``:

* ``closed`` - clamd unreachable or timing out raises ``AntivirusUnavailable`` (503); a
  file over the stream limit raises ``TooLargeToScan`` (413, retrying will not help); any
  other clamd error raises ``AntivirusUnavailable``.
* ``open`` - the upload goes on unscanned: ``{"status": "skipped", "reason":
  "unreachable"}`` (or ``"timeout"``), or ``{"status": "error", "reason":
  "too_large_for_scanner"}`` (or ``"scanner_error"``).

Results always hold ``status`` (clean|infected|skipped|error), ``signature`` and
``engine``; skipped and error results add ``reason``. ``ensure_clean`` turns an infected
result into ``MalwareDetected`` (422).
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

from config import Settings

# The errors live in errors.py with every other code; imported here for callers' convenience.
from errors import AntivirusUnavailable, MalwareDetected, TooLargeToScan

__all__ = [
    "Antivirus", "AntivirusUnavailable", "MalwareDetected", "TooLargeToScan", "ensure_clean",
]  # fmt: skip

DEFAULT_STREAM_MAX_BYTES = 25 * 1024 * 1024  # clamd's default StreamMaxLength
CHUNK_BYTES = 64 * 1024
ENGINE = "clamav"


def ensure_clean(result: dict[str, Any]) -> None:
    """Raise MalwareDetected when a scan result is infected."""
    if result["status"] == "infected":
        raise MalwareDetected(result["signature"])


def _result(status: str, signature: str | None = None, reason: str | None = None) -> dict:
    result = {"status": status, "signature": signature, "engine": ENGINE}
    if reason:
        result["reason"] = reason
    return result


class Antivirus:
    """A clamd client built from the settings."""

    def __init__(self, settings: Settings, stream_max_bytes: int | None = None):
        self.socket_path = settings.clamav_socket
        self.host = settings.clamav_host
        self.port = settings.clamav_port
        self.timeout = settings.clamav_timeout_s
        self.fail_closed = settings.clamav_fail_mode == "closed"
        self.stream_max_bytes = stream_max_bytes or settings.clamav_stream_max_mb * 1024 * 1024

    @property
    def configured(self) -> bool:
        """Return True when a clamd socket or host is set."""
        return bool(self.socket_path or self.host)

    def version(self) -> str | None:
        """Return clamd's version line (None when not configured); raise if it does not PONG."""
        if not self.configured:
            return None
        try:
            if self._command(b"zPING\0") != "PONG":
                raise AntivirusUnavailable()
            return self._command(b"zVERSION\0")
        except OSError as exc:
            raise AntivirusUnavailable() from exc

    def _command(self, command: bytes) -> str:
        with self._connect() as sock:
            sock.sendall(command)
            return _read_reply(sock)

    def scan_file(self, path: str) -> dict[str, Any]:
        """Scan one file with clamd; see the module docstring for failures."""
        if not self.configured:
            return _result("skipped", reason="not_configured")
        if os.path.getsize(path) > self.stream_max_bytes:
            return self._failed("too_large_for_scanner")
        try:
            reply = self._instream(path)
        except TimeoutError:
            return self._failed("timeout")
        except OSError:
            return self._failed("unreachable")
        return self._verdict(reply)

    def _failed(self, reason: str) -> dict[str, Any]:
        """Raise in closed mode; in open mode return why the file went unscanned."""
        if self.fail_closed and reason == "too_large_for_scanner":
            limit_mb = self.stream_max_bytes // (1024 * 1024)
            raise TooLargeToScan(
                f"The file is larger than the virus scanner accepts ({limit_mb} MB)."
            )
        if self.fail_closed:
            raise AntivirusUnavailable()
        status = "skipped" if reason in ("unreachable", "timeout") else "error"
        return _result(status, reason=reason)

    def _verdict(self, reply: str) -> dict[str, Any]:
        """Turn clamd's reply ("stream: OK", "stream: <name> FOUND", "... ERROR") into a result."""
        answer = reply.removeprefix("stream:").strip()
        if answer == "OK":
            return _result("clean")
        if answer.endswith(" FOUND"):
            return _result("infected", signature=answer.removesuffix(" FOUND").strip())
        if "size limit exceeded" in answer:
            return self._failed("too_large_for_scanner")
        return self._failed("scanner_error")

    def _connect(self) -> socket.socket:
        if self.socket_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except OSError:
                sock.close()
                raise
            return sock
        return socket.create_connection((self.host, self.port), timeout=self.timeout)

    def _instream(self, path: str) -> str:
        """Stream the file to clamd in chunks and return its one-line reply."""
        with self._connect() as sock, open(path, "rb") as fh:
            try:
                sock.sendall(b"zINSTREAM\0")
                while chunk := fh.read(CHUNK_BYTES):
                    sock.sendall(struct.pack("!L", len(chunk)) + chunk)
                sock.sendall(struct.pack("!L", 0))
            except (BrokenPipeError, ConnectionResetError):
                pass  # clamd hung up early (stream limit); its reason waits in the reply
            return _read_reply(sock)


def _read_reply(sock: socket.socket) -> str:
    """Read up to the NUL that ends a z-command reply (or until clamd closes)."""
    data = b""
    while not data.endswith(b"\0"):
        part = sock.recv(4096)
        if not part:
            break
        data += part
    if not data:
        raise ConnectionResetError("clamd closed the connection without a reply")
    return data.rstrip(b"\0").decode("utf-8", "replace").strip()
