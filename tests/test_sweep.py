"""Corpus sweep: every file of ../shared/corpus through the real HTTP API (gunicorn with 2
workers, real Redis). 0 HTTP 500, 0 jobs left non-terminal, 0 temp files left, 0 worker
restarts, and every failure has a known error_code. Prints a table (pytest -s, or run
``python -m tests.test_sweep`` from the project root for the table alone)."""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

import errors
from tests.conftest import CORPUS, REDIS_TEST_URL, corpus_manifest
from tests.servers import GunicornServer

pytestmark = pytest.mark.e2e
JOB_DEADLINE_S = 300
# Job outcomes, plus the typed refusals an upload can get at once (e.g. invalid_file_type).
KNOWN_CODES = {
    cls.code
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.ExtractorError) and cls.status < 500
}


class Sweep:
    """Submit every corpus file, poll each job to its end, and record what happened."""

    def __init__(self, server: GunicornServer, corpus: Path) -> None:
        self.server = server
        self.corpus = corpus
        self.statuses: Counter[int] = Counter()
        self.rows: list[dict] = []

    def _request(self, method: str, url: str, **kwargs) -> requests.Response:
        response = requests.request(method, self.server.url + url, timeout=60, **kwargs)
        self.statuses[response.status_code] += 1
        return response

    def submit(self, entry: dict) -> dict:
        path = self.corpus / entry["file"]
        fields = {"password": entry["password"]} if entry.get("password") else {}
        with path.open("rb") as handle:
            files = {"file": (path.name, handle, "application/pdf")}
            response = self._request("POST", "/extract/async", data=fields, files=files)
        row = {"file": entry["file"], "class": entry["class"], "start": time.monotonic()}
        row["outcome"] = None
        row["job_id"] = response.json().get("job_id") if response.status_code == 202 else None
        if not row["job_id"]:  # refused at upload: a 4xx with its error_code
            row["outcome"] = response.json().get("error_code", f"http {response.status_code}")
            row["seconds"] = time.monotonic() - row["start"]
        return row

    def run(self) -> list[dict]:
        """Submit every file, then poll until every job has ended (or the deadline)."""
        self.rows = [self.submit(entry) for entry in corpus_manifest()]
        deadline = time.monotonic() + JOB_DEADLINE_S
        while time.monotonic() < deadline and any(r["outcome"] is None for r in self.rows):
            for row in (r for r in self.rows if r["outcome"] is None):
                self.poll(row)
            time.sleep(0.2)
        return self.rows

    def poll(self, row: dict) -> None:
        response = self._request("GET", f"/job/{row['job_id']}")
        body = response.json()
        if body.get("status") == "completed":
            partial = " (partial)" if body["data"].get("partial") else ""
            row["outcome"] = f"completed{partial}"
            row["pages"] = len(body["data"].get("text", {}))
        elif body.get("status") == "failed":
            row["outcome"] = body["error_code"]
        if row["outcome"]:
            row["seconds"] = time.monotonic() - row["start"]


def print_table(rows: list[dict]) -> None:
    """Print file, class, outcome, seconds, and the totals."""
    print(f"\n{'file':46} {'class':10} {'outcome':22} {'seconds':>7}")
    for row in rows:
        seconds = f"{row['seconds']:7.2f}" if "seconds" in row else f"{'-':>7}"
        print(
            f"{row['file'][:46]:46} {row['class']:10} {row['outcome'] or 'NOT DONE':22} {seconds}"
        )
    totals = Counter(row["outcome"] or "NOT DONE" for row in rows)
    print("totals: " + ", ".join(f"{name} {count}" for name, count in sorted(totals.items())))


def sweep_server(redis_url: str, workdir: Path) -> GunicornServer:
    uploads = workdir / "uploads"
    uploads.mkdir()
    env = {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"pdfx-sweep-{int(time.time() * 1000)}",
        "UPLOAD_DIR": str(uploads),
        "EXTRACT_WORKERS": "2",
        "LOG_LEVEL": "INFO",
        # Many uploads from one address: the limits have their own tests (test_ratelimit.py).
        "RATELIMIT_ENABLED": "false",
    }
    server = GunicornServer(env, workdir / "gunicorn.log", workers=2)
    server.uploads = uploads
    return server


def test_corpus_sweep_over_http(redis_url, corpus, tmp_path):
    with sweep_server(redis_url, tmp_path) as server:
        pids = server.worker_pids()
        rows = Sweep(server, corpus).run()
        print_table(rows)
        assert server.worker_pids() == pids, "a gunicorn worker was restarted"
        log = server.log()
        statuses = Counter(int(s) for s in _access_statuses(log))
    assert len(rows) == len(corpus_manifest())
    assert all(row["outcome"] for row in rows), "jobs left non-terminal"
    assert statuses[500] == 0 and all(code < 500 for code in statuses)
    assert log.count("Booting worker") == 2
    assert "WORKER TIMEOUT" not in log
    failures = {r["outcome"] for r in rows if not r["outcome"].startswith("completed")}
    assert failures <= KNOWN_CODES, failures
    assert list(server.uploads.iterdir()) == []
    assert not [p for p in Path(tempfile.gettempdir()).glob("pdfx-job-*") if p.is_dir()]


def _access_statuses(log: str) -> list[str]:
    # ACCESS_LOG_FORMAT is '%(p)s "%(r)s" %(s)s': the status ends each access line.
    return [line.rsplit(" ", 1)[1] for line in log.splitlines() if line.startswith("<")]


def main() -> None:
    """Run the sweep outside pytest and print its table."""
    with tempfile.TemporaryDirectory() as tmp, sweep_server(REDIS_TEST_URL, Path(tmp)) as server:
        print_table(Sweep(server, CORPUS).run())


if __name__ == "__main__":
    sys.exit(main())
