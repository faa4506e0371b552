"""Benchmark: the Nhost push (batched upserts) vs the earlier service's one big mutation.

Run from the project root: `.venv/bin/python bench/bench_nhost.py` (needs the local
PostgreSQL the test server stores rows in). Both are measured in this one run, against the
same local Hasura-compatible server (tests/hasura_server.py) over real HTTP, on the chunks of
freeculture.pdf (352 pages: pypdfium2 text per page, chunked by chunking.chunk_pages, or by a
fixed-size splitter when that module is missing, which the output says). Printed: chunks
written per second, HTTP requests per document, and the ratio push/baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import pypdfium2
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import load_settings  # noqa: E402
from nhost_auth import NhostIdentity  # noqa: E402
from nhost_client import NhostClient  # noqa: E402
from tests.hasura_server import ADMIN_SECRET, serve_hasura  # noqa: E402

CORPUS = Path(os.environ.get("PDF_CORPUS", ROOT.parent / "shared" / "corpus"))
PDF = CORPUS / "clean" / "freeculture.pdf"
BASELINE_MUTATION = """
mutation Everything($document: documents_insert_input!, $chunks: [document_chunks_insert_input!]!) {
  insert_documents_one(object: $document) { id }
  insert_document_chunks(objects: $chunks) { affected_rows }
}"""


def page_texts(path: Path) -> list[tuple[int, str]]:
    """Return (page number, text) for every page, read with pypdfium2."""
    pdf = pypdfium2.PdfDocument(path)
    try:
        return [(i + 1, pdf[i].get_textpage().get_text_range()) for i in range(len(pdf))]
    finally:
        pdf.close()


def chunked(pages: list[tuple[int, str]]) -> tuple[list[dict], str]:
    """Chunk the pages with the service's chunker, or a fixed-size splitter if it is absent."""
    try:
        from chunking import chunk_pages
    except ImportError:
        return fixed_size_chunks(pages, 1500), "fixed-size 1500-char splitter (no chunking module)"
    return chunk_pages(pages, 1500, 400)[0], "chunking.chunk_pages(size 1500, overlap 400)"


def fixed_size_chunks(pages: list[tuple[int, str]], size: int) -> list[dict]:
    """Split each page's text into size-character chunks."""
    chunks = []
    for number, text in pages:
        for start in range(0, len(text), size):
            piece = text[start : start + size]
            chunks.append({"chunk_index": len(chunks), "text": piece, "pages": [number]})
    return chunks


def push_once(url: str, server, data: dict, batch_size: int) -> tuple[float, int, int]:
    """Push one document with NhostClient; return (seconds, chunks written, requests)."""
    settings = load_settings(
        nhost_graphql_url=url, nhost_admin_secret=ADMIN_SECRET, nhost_batch_size=batch_size
    )
    client = NhostClient(settings)
    before = server.request_count
    started = time.perf_counter()
    result = client.push_document(
        job_id=str(uuid.uuid4()),
        filename="freeculture.pdf",
        upload_device="api",
        data=data,
        identity=NhostIdentity(),
    )
    elapsed = time.perf_counter() - started
    client.session.close()
    if result["status"] != "stored":
        raise SystemExit(f"push failed: {result}")
    return elapsed, result["chunks_written"], server.request_count - before


def baseline_once(url: str, server, data: dict) -> tuple[float, int, int]:
    """Send everything in one mutation, as the earlier service did; same return shape."""
    document_id = str(uuid.uuid4())
    document = {
        "id": document_id,
        "job_id": str(uuid.uuid4()),
        "filename": "freeculture.pdf",
        "metadata": data["metadata"],
        "page_count": data["metadata"]["num_pages"],
    }
    rows = [
        {
            "document_id": document_id,
            "chunk_index": c["chunk_index"],
            "content": c["text"],
            "pages": c["pages"],
        }
        for c in data["chunks"]
    ]
    before = server.request_count
    started = time.perf_counter()
    with requests.Session() as session:
        response = session.post(
            url,
            json={"query": BASELINE_MUTATION, "variables": {"document": document, "chunks": rows}},
            headers={"x-hasura-admin-secret": ADMIN_SECRET},
            timeout=300,
        )
    elapsed = time.perf_counter() - started
    written = response.json()["data"]["insert_document_chunks"]["affected_rows"]
    return elapsed, written, server.request_count - before


def summarize(name: str, runs: list[tuple[float, int, int]]) -> float:
    """Print one line for a measured variant and return its median chunks/s."""
    rate = statistics.median(written / seconds for seconds, written, _ in runs)
    seconds = statistics.median(s for s, _, _ in runs)
    print(
        f"{name:<34} {rate:9.0f} chunks/s  {seconds * 1000:8.1f} ms/doc  "
        f"{runs[0][2]:3d} requests/doc  ({runs[0][1]} chunks)"
    )
    return rate


def main() -> None:
    """Measure both variants, interleaved, and print the figures and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    pages = page_texts(PDF)
    chunks, how = chunked(pages)
    data = {"metadata": {"num_pages": len(pages), "title": "Free Culture"}, "chunks": chunks}
    print(
        f"{PDF.name}: {len(pages)} pages, {len(chunks)} chunks, "
        f"{sum(len(c['text']) for c in chunks)} chars; chunked by {how}"
    )
    runs: dict[str, list] = {"push": [], "push1000": [], "baseline": []}
    with serve_hasura() as (url, server):
        for _ in range(args.repeat):
            runs["push"].append(push_once(url, server, data, 100))
            runs["push1000"].append(push_once(url, server, data, 1000))
            runs["baseline"].append(baseline_once(url, server, data))
    push = summarize("push (batch 100, default)", runs["push"])
    summarize("push (batch 1000)", runs["push1000"])
    baseline = summarize("baseline: one big mutation", runs["baseline"])
    print(f"ratio push/baseline (chunks/s): {push / baseline:.2f}  (median of {args.repeat})")


if __name__ == "__main__":
    main()
