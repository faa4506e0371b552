"""Metrics: one scrape of real gunicorn (2 workers, real Redis) adds up every worker's counts."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import metrics
from api import create_app
from tests.servers import GunicornServer, wait_until
from tests.test_api import make_settings, poll
from tests.test_nhost_jobs import nhost_values, push_job

pytestmark = pytest.mark.e2e

TOKEN = "metrics-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COMPLETING = "clean/pdflatex-4-pages.pdf"  # 4 pages
FAILING = [
    ("encrypted/issue6010_1.pdf", "password_required"),
    ("image-only/bitmap-halftone.pdf", "no_text_layer"),
]
MAX_UPLOADS = 48
UPLOAD_BATCH = 4


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory):
    """gunicorn with 2 workers on the real Redis, metrics behind a token."""
    tmp = tmp_path_factory.mktemp("metrics")
    env = {
        "REDIS_URL": redis_url,
        "RATELIMIT_ENABLED": "false",
        "REDIS_KEY_PREFIX": f"pdfx-metrics-{int(time.time() * 1000)}",
        "UPLOAD_DIR": str(tmp),
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
    }
    with GunicornServer(env, tmp / "gunicorn.log", workers=2) as running:
        # /health answers as soon as one worker is up; on a loaded machine the other may
        # still be importing, and would then take no upload at all.
        assert wait_until(lambda: both_workers_answer(running), 60, interval=0.05)
        yield running


def both_workers_answer(server) -> bool:
    """Send one /health and tell whether both workers have answered one by now."""
    requests.get(f"{server.url}/health", timeout=10)
    return len(set(re.findall(r"^<(\d+)> \"GET /health", server.log(), re.M))) == 2


def scrape(server) -> dict[tuple[str, tuple], float]:
    """Return every sample of /metrics keyed by (name, sorted labels)."""
    response = requests.get(f"{server.url}/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            key = (sample.name, labels)
            samples[key] = samples.get(key, 0) + sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """Return one sample's value (0 when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def upload(server, path: Path, fields: dict | None = None) -> str:
    """POST a file to /extract/async on a fresh connection and return the job id."""
    with path.open("rb") as handle:
        response = requests.post(
            f"{server.url}/extract/async",
            data=fields or {},
            files={"file": (path.name, handle, "application/pdf")},
            timeout=30,
        )
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def answering_pids(server) -> set[str]:
    """Return the worker pids that accepted uploads (from gunicorn's access log)."""
    return set(re.findall(r"^<(\d+)> \"POST /extract/async", server.log(), re.MULTILINE))


def wait_terminal(server, job_ids: list[str], timeout: float = 120) -> None:
    """Poll until every job is completed or failed."""

    def done() -> bool:
        states = [requests.get(f"{server.url}/job/{j}", timeout=10).json() for j in job_ids]
        return all(s["status"] in ("completed", "failed") for s in states)

    assert wait_until(done, timeout, interval=0.2), "jobs left non-terminal"


@pytest.fixture(scope="module")
def jobs_run(server, corpus):
    """Run completing jobs until both workers took some, plus one of each failing kind."""
    completed: list[str] = []
    # Concurrent uploads on fresh connections spread over the workers' accept loops.
    with ThreadPoolExecutor(UPLOAD_BATCH) as pool:
        while len(answering_pids(server)) < 2 and len(completed) < MAX_UPLOADS:
            batch = [pool.submit(upload, server, corpus / COMPLETING) for _ in range(UPLOAD_BATCH)]
            completed.extend(future.result() for future in batch)
    assert len(answering_pids(server)) == 2, "every upload landed on one worker"
    failed = [upload(server, corpus / name) for name, _ in FAILING]
    wait_terminal(server, completed + failed)
    total = len(completed) + len(failed)
    settled = wait_until(
        lambda: (
            value(scrape(server), "pdf_extractor_jobs_running") == 0
            and sum(v for (n, _), v in scrape(server).items() if n == "pdf_extractor_jobs_total")
            == total
        ),
        30,
        interval=0.2,
    )
    assert settled, "metrics did not settle"
    return {"completed": len(completed), "failed": len(failed)}


class TestScrapeAddsUpWorkers:
    """Counts from both workers appear summed in one scrape."""

    def test_jobs_by_final_status_and_error_code(self, server, jobs_run):
        samples = scrape(server)
        total = jobs_run["completed"] + jobs_run["failed"]
        assert value(samples, "pdf_extractor_jobs_submitted_total") == total
        completed = value(
            samples, "pdf_extractor_jobs_total", status="completed", error_code="none"
        )
        assert completed == jobs_run["completed"]
        for _, code in FAILING:
            failed = value(samples, "pdf_extractor_jobs_total", status="failed", error_code=code)
            assert failed == 1, code

    def test_pages_bytes_and_durations(self, server, corpus, jobs_run):
        samples = scrape(server)
        assert value(samples, "pdf_extractor_pages_processed_total") == 4 * jobs_run["completed"]
        size = (corpus / COMPLETING).stat().st_size * jobs_run["completed"]
        size += sum((corpus / name).stat().st_size for name, _ in FAILING)
        assert value(samples, "pdf_extractor_bytes_processed_total") == size
        count = value(samples, "pdf_extractor_job_duration_seconds_count", status="completed")
        assert count == jobs_run["completed"]
        reading = value(samples, "pdf_extractor_stage_duration_seconds_count", stage="reading")
        assert reading == jobs_run["completed"] + jobs_run["failed"]

    def test_gauges_after_the_work(self, server, jobs_run):
        samples = scrape(server)
        assert value(samples, "pdf_extractor_queue_depth") == 0
        assert value(samples, "pdf_extractor_jobs_running") == 0
        assert value(samples, "pdf_extractor_redis_up") == 1

    def test_requests_by_route_and_status(self, server, jobs_run):
        samples = scrape(server)
        accepted = value(
            samples,
            "pdf_extractor_http_requests_total",
            method="POST",
            route="/extract/async",
            status="202",
        )
        assert accepted == jobs_run["completed"] + jobs_run["failed"]

    def test_rejected_upload_is_counted_in_one_scrape(self, server, jobs_run, tmp_path):
        fake = tmp_path / "fake.pdf"
        fake.write_bytes(b"not a pdf" * 50)
        codes = []
        before = scrape(server)
        for _ in range(3):
            with fake.open("rb") as handle:
                response = requests.post(
                    f"{server.url}/extract/async", files={"file": handle}, timeout=10
                )
            assert response.status_code == 400
            codes.append(response.json()["error_code"])
        (code,) = set(codes)
        after = scrape(server)
        name = "pdf_extractor_rejected_requests_total"
        assert value(after, name, error_code=code) == value(before, name, error_code=code) + 3


class TestDeadWorkers:
    """A worker that dies keeps its counts but leaves the live gauges."""

    def test_killed_worker_is_marked_dead(self, server, jobs_run):
        before = scrape(server)
        victim = min(server.worker_pids())
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(server.worker_pids() - {victim}) == 2, 30)
        assert wait_until(lambda: victim not in server.worker_pids(), 30)

        def memory_series() -> int:
            response = requests.get(f"{server.url}/metrics", headers=AUTH, timeout=10)
            pattern = r"^pdf_extractor_worker_resident_memory_bytes\{"
            names = re.findall(pattern, response.text, re.M)
            return len(names)

        # Both live workers report memory once each has answered a request (liveall mode).
        assert wait_until(lambda: memory_series() <= 2, 30, interval=0.1)
        after = scrape(server)
        for name in ("pdf_extractor_jobs_total", "pdf_extractor_jobs_submitted_total"):
            summed = [sum(v for (n, _), v in s.items() if n == name) for s in (before, after)]
            assert summed[0] == summed[1], name
        assert (
            f'pid="{victim}"'
            not in requests.get(f"{server.url}/metrics", headers=AUTH, timeout=10).text
        )


class TestMetricsToken:
    """/metrics wants `Authorization: Bearer <METRICS_TOKEN>` when one is set."""

    @pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
    def test_refused_without_the_token(self, server, header):
        headers = {"Authorization": header} if header else {}
        response = requests.get(f"{server.url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error_code"] == "unauthorized"

    def test_open_when_no_token_is_set(self, tmp_path):
        from config import load_settings

        app = create_app(load_settings(metrics_token=None, redis_url=None))
        response = app.test_client().get("/metrics")
        assert response.status_code == 200
        assert b"pdf_extractor_jobs_submitted_total" in response.data


def test_resident_memory_of_this_process_is_read():
    """The memory gauge reads a plausible RSS from /proc."""
    assert 5 * 2**20 < metrics.resident_memory_bytes() < 8 * 2**30


def test_requests_read_memory_at_most_once_per_refresh_interval(monkeypatch):
    """Per-request refreshes read /proc once per MEMORY_REFRESH_S; a job's end always reads."""
    reads = []

    def fake_rss(pid="self"):
        reads.append(pid)
        return 64 * 2**20 + len(reads)

    monkeypatch.setattr(metrics, "resident_memory_bytes", fake_rss)
    monkeypatch.setattr(metrics, "_memory_read_at", float("-inf"))
    gauge = "pdf_extractor_worker_resident_memory_bytes"
    metrics.refresh_memory(now=1000.0)
    assert len(reads) == 1 and metrics.REGISTRY.get_sample_value(gauge) == 64 * 2**20 + 1
    metrics.refresh_memory(now=1000.0 + metrics.MEMORY_REFRESH_S / 2)
    assert len(reads) == 1
    metrics.refresh_memory(now=1000.0 + metrics.MEMORY_REFRESH_S)
    assert len(reads) == 2 and metrics.REGISTRY.get_sample_value(gauge) == 64 * 2**20 + 2
    metrics.record_job_started()
    metrics.record_job_ended()
    assert len(reads) == 3


def test_first_request_of_a_process_sets_the_memory_gauge(tmp_path, monkeypatch):
    """A fresh worker reports its memory on its first answered request."""
    monkeypatch.setattr(metrics, "_memory_read_at", float("-inf"))
    metrics.WORKER_MEMORY.set(0)
    app = create_app(make_settings(tmp_path))
    try:
        assert app.test_client().get("/job/unknown").status_code == 404
    finally:
        app.extensions["pdfx"].jobs.shutdown()
    gauge = metrics.REGISTRY.get_sample_value("pdf_extractor_worker_resident_memory_bytes")
    assert 5 * 2**20 < gauge < 8 * 2**30


def test_nhost_push_outcome_is_counted(hasura, tmp_path, corpus):
    """A job's push to (a local) Nhost counts under its outcome."""
    app = create_app(make_settings(tmp_path, **nhost_values(hasura[0])))
    client = app.test_client()
    before = metrics.NHOST_PUSHES.labels("stored")._value.get()
    try:
        job = poll(client, push_job(client, corpus).get_json()["job_id"])
    finally:
        app.extensions["pdfx"].jobs.shutdown()
    assert job["nhost_result"]["status"] == "stored"
    assert metrics.NHOST_PUSHES.labels("stored")._value.get() == before + 1
