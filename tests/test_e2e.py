"""End to end: real gunicorn with 2 workers and a real Redis, real corpus PDFs over HTTP."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import corpus_entry
from tests.servers import GunicornServer, wait_until

pytestmark = pytest.mark.e2e

CASES = [
    # (corpus file, form fields, expected status, expected error_code)
    ("clean/pdflatex-4-pages.pdf", {}, "completed", None),
    ("clean/2201.00200.pdf", {}, "completed", None),
    ("clean/GeoTopo-komprimiert.pdf", {"pages": "1-3,50,117"}, "completed", None),
    ("encrypted/libreoffice-writer-password.pdf", {"password": "openpassword"}, "completed", None),
    ("encrypted/issue6010_1.pdf", {"password": "abc"}, "completed", None),
    ("encrypted/issue6010_1.pdf", {}, "failed", "password_required"),
    ("image-only/bitmap-halftone.pdf", {}, "failed", "no_text_layer"),
    ("malformed/bug1020226.pdf", {}, "failed", "corrupt_pdf"),
    ("malformed/Pages-tree-refs.pdf", {}, "completed", None),
]


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory):
    """gunicorn with 2 workers on the real Redis, with a private upload dir."""
    tmp = tmp_path_factory.mktemp("e2e")
    uploads = tmp / "uploads"
    uploads.mkdir()
    prefix = f"pdfx-e2e-{int(time.time() * 1000)}"
    env = {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "UPLOAD_DIR": str(uploads),
        "EXTRACT_WORKERS": "2",
        "LOG_LEVEL": "INFO",
        # Many uploads from one address: the limits have their own tests (test_ratelimit.py).
        "RATELIMIT_ENABLED": "false",
    }
    with GunicornServer(env, tmp / "gunicorn.log", workers=2) as running:
        running.uploads = uploads
        yield running


def poll_all(server, job_ids: list[str], deadline_s: float = 120) -> dict[str, dict]:
    """Poll every job (fresh connection each time) until all are terminal."""
    finished: dict[str, dict] = {}
    deadline = time.monotonic() + deadline_s
    while len(finished) < len(job_ids) and time.monotonic() < deadline:
        for job_id in set(job_ids) - set(finished):
            body = requests.get(f"{server.url}/job/{job_id}", timeout=10).json()
            assert body["status"] in ("queued", "processing", "completed", "failed"), body
            if body["status"] in ("completed", "failed"):
                finished[job_id] = body
        time.sleep(0.1)
    assert len(finished) == len(job_ids), "jobs left non-terminal"
    return finished


def word_recall(text: str, truth: str) -> float:
    """Return the share of ground-truth words found in the text."""
    words = re.findall(r"\w+", text.lower())
    truth_words = re.findall(r"\w+", truth.lower())
    have = set(words)
    return sum(w in have for w in truth_words) / max(len(truth_words), 1)


def polling_pids(server) -> set[str]:
    """Return the worker pids that answered GET /job requests (from the access log)."""
    return set(re.findall(r"^<(\d+)> \"GET /job/", server.log(), re.MULTILINE))


def test_corpus_documents_end_to_end(server, corpus):
    """Every kind of real PDF ends in its expected state, polled across both workers."""
    job_ids = {
        server.submit(corpus / name, **fields): (name, fields, status, code)
        for name, fields, status, code in CASES
    }
    results = poll_all(server, list(job_ids))
    for job_id, (name, fields, status, code) in job_ids.items():
        job = results[job_id]
        assert job["status"] == status, (name, job)
        assert job.get("error_code") == code, (name, job)
        if status == "completed":
            check_completed(corpus, name, fields, job)
    any_id = next(iter(job_ids))
    for _ in range(100):  # the kernel spreads connections unevenly; keep polling a little
        if len(polling_pids(server)) >= 2:
            break
        assert requests.get(f"{server.url}/job/{any_id}", timeout=10).json() == results[any_id]
    assert len(polling_pids(server)) >= 2, "both workers should have answered polls"


def check_completed(corpus: Path, name: str, fields: dict, job: dict) -> None:
    """Check page count, first words, ground truth and chunk pages of a completed job."""
    entry = corpus_entry(name)
    data = job["data"]
    assert data["metadata"]["num_pages"] == entry["pypdfium2"]["pages"]
    pages = sorted(int(key.split("_")[1]) for key in data["text"])
    failed = sorted(item["page_number"] for item in data.get("failed_pages", []))
    if "pages" not in fields:
        assert sorted(pages + failed) == list(range(1, entry["pypdfium2"]["pages"] + 1))
        first = " ".join(data["text"]["page_1"]["text"].split())
        assert first.startswith(entry["pypdfium2"]["first_words"][:60])
    assert job["pages_done"] == job["pages_total"] == len(pages) + len(failed)
    for chunk in data["chunks"]:
        assert set(chunk["pages"]) <= set(pages)
        assert chunk["start_page"] == min(chunk["pages"])
        assert chunk["end_page"] == max(chunk["pages"])
    if entry.get("ground_truth"):
        truth = (corpus / entry["ground_truth"]).read_text()
        text = " ".join(page["text"] for page in data["text"].values())
        assert word_recall(text, truth) > 0.9


def long_poll_pids(server, job_id: str) -> set[str]:
    """Return the worker pids that answered this job's long-polls (from the access log)."""
    line = rf'^<(\d+)> "GET /job/{job_id}\?wait=\d+ '
    return set(re.findall(line, server.log(), re.MULTILINE))


def test_long_poll_is_woken_on_every_worker(server, corpus):
    """GET /job?wait= answers completed the moment the job ends, on either worker: the one
    not running the job learns of its end through Redis."""
    path = corpus / "clean/freeculture.pdf"
    for _ in range(20):  # until the kernel has given long-polls to both workers
        job_id = server.submit(path)
        with ThreadPoolExecutor(4) as pool:  # 4 = JOB_WAIT_SLOTS: never more per worker
            answers = list(pool.map(long_poll, [server] * 4, [job_id] * 4))
        bodies = [body for body, _ in answers]
        # Woken, not timed out: the wait (60 s, capped at 30) is far beyond the job's duration.
        assert all(seconds < 20 for _, seconds in answers), answers
        assert all(body["status"] == "completed" for body in bodies), bodies
        assert all(body == bodies[0] for body in bodies)
        assert bodies[0]["data"]["metadata"]["num_pages"] == 352
        if len(long_poll_pids(server, job_id)) == 2:
            return
    pytest.fail("the long-polls never reached both workers")


def long_poll(server, job_id: str) -> tuple[dict, float]:
    """One long-poll on a fresh connection; return its body and how long it took."""
    start = time.monotonic()
    body = requests.get(f"{server.url}/job/{job_id}?wait=60", timeout=90).json()
    return body, time.monotonic() - start


def test_no_upload_left_behind(server, corpus):
    """Once every job has ended, the upload directory is empty."""
    ids = [server.submit(corpus / name, **fields) for name, fields, _, _ in CASES[:3]]
    poll_all(server, ids)
    assert wait_until(lambda: not list(server.uploads.iterdir()), 10), list(
        server.uploads.iterdir()
    )


def test_health_names_redis(server):
    """/health on gunicorn reports the Redis store as connected."""
    body = requests.get(f"{server.url}/health", timeout=5).json()
    assert body["status"] == "healthy"
    assert body["redis"] == "connected" and body["job_store"] == "redis"


def test_sync_extract_over_http(server, corpus):
    """POST /extract answers 200 with the data."""
    path = corpus / "clean/minimal-document.pdf"
    with path.open("rb") as handle:
        response = requests.post(
            f"{server.url}/extract", files={"file": (path.name, handle)}, timeout=60
        )
    assert response.status_code == 200
    assert response.json()["data"]["text"]["page_1"]["text"].startswith("Lorem ipsum")
