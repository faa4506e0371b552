"""Shared fixtures: the real-PDF corpus and a real Redis."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import redis
from clamd_server import clamd  # noqa: F401 - the session fixture of a private clamd

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("PDF_CORPUS", ROOT.parent / "shared" / "corpus"))
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def corpus_manifest() -> list[dict]:
    """Return the corpus manifest entries (empty when the corpus is absent outside CI)."""
    path = CORPUS / "manifest.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["files"]


def corpus_entry(name: str) -> dict:
    """Return the manifest entry whose file path ends with ``name``."""
    for entry in corpus_manifest():
        if entry["file"].endswith(name):
            return entry
    raise LookupError(name)


def _missing(what: str) -> None:
    # A real service that is missing must fail CI loudly, never skip it.
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def corpus() -> Path:
    """Path to ../shared/corpus."""
    if not (CORPUS / "manifest.json").exists():
        _missing(f"the PDF corpus at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real, answering Redis."""
    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        _missing(f"Redis at {REDIS_TEST_URL}")
    return REDIS_TEST_URL


@pytest.fixture
def redis_prefix(redis_url: str):
    """A key prefix private to one test; its keys are deleted afterwards."""
    prefix = f"pdfx-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def postgres() -> None:
    """Require the real local PostgreSQL the test server stores rows in."""
    import psycopg  # only the Nhost tests need it
    from hasura_server import PG_DSN

    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except psycopg.Error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_DSN} is required in CI")
        pytest.skip("PostgreSQL not available")


@pytest.fixture
def hasura(postgres):
    """A fresh Hasura-compatible server: (url, server)."""
    from hasura_server import serve_hasura

    with serve_hasura() as served:
        yield served
