"""The CLI: local extraction of real PDFs, exit codes, and submit/status against real gunicorn."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import cli
from tests.conftest import corpus_entry
from tests.servers import ROOT, GunicornServer, free_port

FOUR_PAGES = "clean/pdflatex-4-pages.pdf"
ENCRYPTED = "encrypted/issue6010_1.pdf"  # password "abc"
CORRUPT = "malformed/bug1020226.pdf"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m cli ...` as a user would, from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class TestExtract:
    """`extract` runs the service's pipeline here and prints JSON or text."""

    def test_json_has_every_page_and_chunks(self, corpus):
        result = run("extract", str(corpus / FOUR_PAGES))
        assert result.returncode == cli.EXIT_OK, result.stderr
        data = json.loads(result.stdout)
        assert sorted(data["text"]) == ["page_1", "page_2", "page_3", "page_4"]
        first_words = corpus_entry(FOUR_PAGES)["pypdfium2"]["first_words"]
        assert data["text"]["page_1"]["text"].startswith(first_words[:40])
        assert data["metadata"]["num_pages"] == 4
        assert data["chunks"] and all(set(c["pages"]) <= {1, 2, 3, 4} for c in data["chunks"])

    def test_text_of_selected_pages(self, corpus):
        result = run("extract", str(corpus / FOUR_PAGES), "--pages", "1-2", "--text")
        assert result.returncode == cli.EXIT_OK, result.stderr
        assert result.stdout.count("\f") == 1
        assert result.stdout.startswith(corpus_entry(FOUR_PAGES)["pypdfium2"]["first_words"][:40])

    def test_chunks_only(self, corpus):
        result = run("extract", str(corpus / FOUR_PAGES), "--chunks", "--chunk-size", "500")
        assert result.returncode == cli.EXIT_OK, result.stderr
        chunks = json.loads(result.stdout)
        assert isinstance(chunks, list) and len(chunks) > 4
        assert all(c["char_count"] <= 500 for c in chunks)

    def test_password(self, corpus):
        refused = run("extract", str(corpus / ENCRYPTED))
        assert refused.returncode == cli.EXIT_FAILED
        assert "password_required" in refused.stderr and refused.stdout == ""
        opened = run("extract", str(corpus / ENCRYPTED), "--password", "abc", "--text")
        assert opened.returncode == cli.EXIT_OK, opened.stderr
        assert opened.stdout.strip()

    def test_corrupt_pdf_fails(self, corpus):
        result = run("extract", str(corpus / CORRUPT))
        assert result.returncode == cli.EXIT_FAILED
        assert "corrupt_pdf" in result.stderr

    def test_progress_bar_on_stderr_for_long_documents(self, corpus):
        result = run("extract", str(corpus / "clean/freeculture.pdf"), "--text", "--progress")
        assert result.returncode == cli.EXIT_OK, result.stderr
        assert "352/352 pages" in result.stderr
        assert "[#" not in result.stdout

    def test_no_bar_when_not_a_terminal(self, corpus):
        result = run("extract", str(corpus / "clean/freeculture.pdf"), "--pages", "1-30")
        assert result.returncode == cli.EXIT_OK, result.stderr
        assert "/30 pages" not in result.stderr


class TestExitCodes:
    """Refused input, wrong usage and pending jobs each have their own code."""

    def test_missing_file(self, tmp_path):
        result = run("extract", str(tmp_path / "absent.pdf"))
        assert result.returncode == cli.EXIT_INPUT and "no such file" in result.stderr

    def test_not_a_pdf(self, tmp_path):
        fake = tmp_path / "fake.pdf"
        fake.write_bytes(b"plain text, not a PDF " * 20)
        result = run("extract", str(fake))
        assert result.returncode == cli.EXIT_INPUT and "not a PDF" in result.stderr

    def test_bad_pages(self, corpus):
        result = run("extract", str(corpus / FOUR_PAGES), "--pages", "two")
        assert result.returncode == cli.EXIT_INPUT and "invalid_pages_spec" in result.stderr

    def test_pages_beyond_the_document(self, corpus):
        result = run("extract", str(corpus / FOUR_PAGES), "--pages", "9")
        assert result.returncode == cli.EXIT_FAILED and "invalid_pages" in result.stderr

    def test_usage(self):
        assert run("extract").returncode == cli.EXIT_USAGE
        assert run("extract", "a.pdf", "--json", "--text").returncode == cli.EXIT_USAGE

    @pytest.mark.parametrize(
        ("status", "code"),
        [("completed", 0), ("failed", 1), ("queued", 6), ("processing", 6)],
    )
    def test_job_status_codes(self, status, code):
        assert cli.job_exit_code({"status": status}) == code

    def test_unreachable_server(self, corpus):
        url = f"http://127.0.0.1:{free_port()}"
        result = run("status", "abc", "--server", url, "--request-timeout", "5")
        assert result.returncode == cli.EXIT_SERVER and "cannot reach" in result.stderr


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory):
    """gunicorn with 2 workers on the real Redis."""
    tmp = tmp_path_factory.mktemp("cli")
    env = {
        "REDIS_URL": redis_url,
        "RATELIMIT_ENABLED": "false",
        "REDIS_KEY_PREFIX": f"pdfx-cli-{int(time.time() * 1000)}",
        "UPLOAD_DIR": str(tmp),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
    }
    with GunicornServer(env, tmp / "gunicorn.log", workers=2) as running:
        yield running


@pytest.mark.e2e
class TestAgainstServer:
    """`submit` and `status` talk to real gunicorn (2 workers, real Redis)."""

    def server_args(self, server) -> list[str]:
        return ["--server", server.url, "--poll-interval", "0.2", "--timeout", "120"]

    def test_submit_then_status(self, server, corpus):
        submitted = run("submit", str(corpus / FOUR_PAGES), *self.server_args(server))
        assert submitted.returncode == cli.EXIT_OK, submitted.stderr
        job_id = json.loads(submitted.stdout)["job_id"]
        status = run("status", job_id, "--wait", *self.server_args(server))
        assert status.returncode == cli.EXIT_OK, status.stderr
        job = json.loads(status.stdout)
        assert job["status"] == "completed" and job["pages_total"] == 4
        assert len(job["data"]["text"]) == 4

    def test_submit_wait_with_options(self, server, corpus):
        args = ["--pages", "2", "--wait", *self.server_args(server)]
        result = run("submit", str(corpus / FOUR_PAGES), *args)
        assert result.returncode == cli.EXIT_OK, result.stderr
        assert list(json.loads(result.stdout)["data"]["text"]) == ["page_2"]

    def test_failed_job(self, server, corpus):
        result = run("submit", str(corpus / ENCRYPTED), "--wait", *self.server_args(server))
        assert result.returncode == cli.EXIT_FAILED
        assert json.loads(result.stdout)["error_code"] == "password_required"

    def test_refused_upload(self, server, tmp_path):
        fake = tmp_path / "fake.pdf"
        fake.write_bytes(b"no" * 100)
        result = run("submit", str(fake), *self.server_args(server))
        assert result.returncode == cli.EXIT_INPUT and "not a PDF" in result.stderr

    def test_unknown_job(self, server):
        result = run("status", "0" * 32, *self.server_args(server))
        assert result.returncode == cli.EXIT_NOT_FOUND and "job_not_found" in result.stderr
