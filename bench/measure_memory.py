"""Measure resident memory of a gunicorn worker (idle, during a job), its zygote and parse
processes.

Starts real gunicorn (2 workers) on the Redis at $TEST_REDIS_URL (default 127.0.0.1:6379/0)
under a private key prefix, uploads one PDF (default: freeculture.pdf, 352 pages), and samples
/proc every 20 ms. Prints peak RSS in MiB. Usage: python bench/measure_memory.py [PDF]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from metrics import resident_memory_bytes  # noqa: E402
from tests.servers import GunicornServer, wait_until  # noqa: E402

MIB = 2**20
DEFAULT_PDF = ROOT.parent / "shared" / "corpus" / "clean" / "freeculture.pdf"


def children(pid: int) -> list[int]:
    """Return the direct children of a process."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def descendants(pid: int) -> list[int]:
    """Return every process below ``pid``: its zygote, the parse children and their helpers."""
    found = children(pid)
    return found + [grandchild for child in found for grandchild in descendants(child)]


class Sampler(threading.Thread):
    """Record the peak RSS of the workers and of their children until stopped."""

    def __init__(self, workers: list[int]) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.peak_worker = 0
        self.peak_child = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for worker in self.workers:
                self.peak_worker = max(self.peak_worker, resident_memory_bytes(worker))
                for child in descendants(worker):
                    self.peak_child = max(self.peak_child, resident_memory_bytes(child))
            time.sleep(0.02)


def main() -> None:
    pdf = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PDF
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"pdfx-memory-{os.getpid()}",
            "UPLOAD_DIR": tmp,
            "PROMETHEUS_MULTIPROC_DIR": f"{tmp}/prom",
        }
        with GunicornServer(env, Path(tmp) / "gunicorn.log", workers=2) as server:
            for _ in range(10):  # let both workers import everything
                requests.get(f"{server.url}/metrics", timeout=10)
            workers = sorted(server.worker_pids())
            idle = max(resident_memory_bytes(pid) for pid in workers)
            sampler = Sampler(workers)
            sampler.start()
            with pdf.open("rb") as handle:
                job = requests.post(
                    f"{server.url}/extract/async", files={"file": (pdf.name, handle)}, timeout=60
                ).json()

            def done() -> bool:
                status = requests.get(f"{server.url}/job/{job['job_id']}", timeout=10).json()
                return status["status"] in ("completed", "failed")

            wait_until(done, 300, 0.2)
            sampler.stop.set()
            sampler.join()
            after = max(resident_memory_bytes(pid) for pid in workers)
            zygotes = [child for pid in workers for child in children(pid)]
            zygote = max((resident_memory_bytes(pid) for pid in zygotes), default=0)
    print(f"file: {pdf.name}")
    print(f"worker RSS idle:             {idle / MIB:7.1f} MiB")
    print(f"worker RSS peak during job:  {sampler.peak_worker / MIB:7.1f} MiB")
    print(f"worker RSS after job:        {after / MIB:7.1f} MiB")
    print(f"parse process RSS peak:      {sampler.peak_child / MIB:7.1f} MiB")
    print(f"zygote RSS after job:        {zygote / MIB:7.1f} MiB")


if __name__ == "__main__":
    main()
