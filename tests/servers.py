"""Real processes for tests: the service under gunicorn, and private Redis servers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
ACCESS_LOG_FORMAT = '%(p)s "%(r)s" %(s)s'


def free_port() -> int:
    """Return a loopback TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check()`` until it is truthy or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


class GunicornServer:
    """`gunicorn api:app -c gunicorn.conf.py` on a loopback port, with its own environment."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.workers = workers
        self.env = {
            **os.environ,
            **env,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> GunicornServer:
        """Start gunicorn and wait until /health answers."""
        gunicorn = Path(sys.executable).with_name("gunicorn")
        command = [
            str(gunicorn),
            "api:app",
            "-c",
            "gunicorn.conf.py",
            "--access-logfile",
            "-",
            "--access-logformat",
            ACCESS_LOG_FORMAT,
        ]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Every worker must be ready, or the kernel hands all connections to the first one.
        if not wait_until(lambda: self._healthy() and self._all_workers_ready(), timeout):
            self.stop()
            raise RuntimeError(f"gunicorn did not start:\n{self.log()}")
        return self

    def _all_workers_ready(self) -> bool:
        return len(set(re.findall(r"worker (\d+) ready", self.log()))) >= self.workers

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        """Return what gunicorn has written so far."""
        return self.log_path.read_text(errors="replace")

    def submit(self, path: Path, **fields: str) -> str:
        """POST one PDF to /extract/async with these form fields and return the job id."""
        with path.open("rb") as handle:
            response = requests.post(
                f"{self.url}/extract/async",
                data=fields,
                files={"file": (path.name, handle, "application/pdf")},
                timeout=30,
            )
        assert response.status_code == 202, response.text
        return response.json()["job_id"]

    def worker_pids(self) -> set[int]:
        """Return the pids of the live workers (children of the master)."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return {int(pid) for pid in out.split()}

    def stop(self) -> None:
        """Stop gunicorn (SIGTERM, then SIGKILL to the whole group)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A private redis-server on its own port, which a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        """Start redis-server and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(self.ping, 10):
            raise RuntimeError("private redis-server did not start")
        return self

    def ping(self) -> bool:
        """Return whether the server answers."""
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Stop the server."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
