"""Start a real, private clamd for tests (Debian packages clamav-daemon and clamav).

No internet and no system database: clamd runs in the foreground from a temp directory,
with a one-line signature database that matches the EICAR test string (clamd refuses to
start on an empty database directory). It listens on a Unix socket and on an ephemeral
loopback TCP port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pdf_factory import EICAR

SIGNATURE = "EicarTest"  # clamd reports it as "EicarTest.UNOFFICIAL"
START_TIMEOUT_S = 60.0


@dataclass
class ClamdServer:
    """A running private clamd."""

    process: subprocess.Popen
    directory: Path
    socket_path: str
    host: str
    port: int

    def stop(self) -> None:
        """Stop clamd and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        """Return what clamd wrote so far."""
        return (self.directory / "clamd.log").read_text(errors="replace")


def clamd_binary() -> str | None:
    """Return the clamd executable, or None when the package is not installed."""
    return shutil.which("clamd") or shutil.which("clamd", path="/usr/sbin:/usr/local/sbin")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _eicar_database(directory: Path) -> None:
    hexdump = subprocess.run(
        ["sigtool", "--hex-dump"], input=EICAR, capture_output=True, check=True
    ).stdout
    line = f"{SIGNATURE}:0:*:{hexdump.decode().strip()}\n"
    directory.mkdir()
    (directory / "test.ndb").write_text(line)


def _config(directory: Path, port: int, stream_max_mb: int) -> Path:
    lines = [
        "Foreground yes",
        f"LocalSocket {directory / 'clamd.sock'}",
        "TCPAddr 127.0.0.1",
        f"TCPSocket {port}",
        f"DatabaseDirectory {directory / 'db'}",
        f"TemporaryDirectory {directory}",
        f"PidFile {directory / 'clamd.pid'}",
        f"StreamMaxLength {stream_max_mb}M",
        "SelfCheck 0",
    ]
    path = directory / "clamd.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_clamd(directory: Path, stream_max_mb: int = 25) -> ClamdServer:
    """Start clamd with a private config in ``directory``; return once it answers PING."""
    binary = clamd_binary()
    if binary is None:
        raise FileNotFoundError("clamd is not installed (apt-get install clamav-daemon clamav)")
    _eicar_database(directory / "db")
    port = _free_port()
    config = _config(directory, port, stream_max_mb)
    with open(directory / "clamd.log", "wb") as log:
        process = subprocess.Popen(
            [binary, f"--config-file={config}"], stdout=log, stderr=subprocess.STDOUT
        )
    server = ClamdServer(process, directory, str(directory / "clamd.sock"), "127.0.0.1", port)
    _wait_for_ping(server)
    return server


def _wait_for_ping(server: ClamdServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"clamd exited at start:\n{server.log()}")
        if _pongs(server.socket_path):
            return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"clamd did not answer PING in {START_TIMEOUT_S} s:\n{server.log()}")


def _pongs(socket_path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(socket_path)
            sock.sendall(b"zPING\0")
            return sock.recv(16) == b"PONG\0"
    except OSError:
        return False


def require_clamd() -> None:
    """Fail in CI, skip elsewhere, when clamd or sigtool is not installed."""
    if clamd_binary() and shutil.which("sigtool"):
        return
    if os.environ.get("CI"):
        pytest.fail("clamd is required in CI but is not installed (clamav-daemon, clamav)")
    pytest.skip("clamd not installed (apt-get install clamav-daemon clamav)")


@pytest.fixture(scope="session")
def clamd(tmp_path_factory):
    """A private clamd for the whole session (25 MB stream limit, EICAR signature)."""
    require_clamd()
    server = start_clamd(tmp_path_factory.mktemp("clamd"))
    yield server
    server.stop()
