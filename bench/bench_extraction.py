"""Benchmark: raw pypdfium2 vs the full service path vs the earlier service's engine.

Run from the project root: `make bench` (or `.venv/bin/python bench/bench_extraction.py`).
All three are measured in this one run, on the same files, and printed as pages/s with
the ratios service/raw and service/pdfplumber. The service path is real: gunicorn with
2 workers on a real Redis, upload over HTTP, then wait for the job on the same keep-alive
connection and decode the result. By default the client long-polls (``GET /job/<id>?wait=30``,
answered the moment the job ends, by whichever worker the poll reaches); ``--poll-interval S``
polls every S seconds instead, as a client without ``wait`` does (each poll costs both sides CPU).
``--rounds N`` measures every file N times over and prints each file's median ratio and range:
on a shared 2-core box one round's per-file ratio moves by 0.1-0.3.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import GunicornServer, RedisServer  # noqa: E402

CORPUS = Path(os.environ.get("PDF_CORPUS", ROOT.parent / "shared" / "corpus"))
LARGE_FILES = [
    "clean/freeculture.pdf",
    "clean/GeoTopo-komprimiert.pdf",
    "clean/2023_Q1_MSFT.pdf",
    "clean/2022_Q3_INTC.pdf",
    "clean/2022_Q3_AMZN.pdf",
    "clean/2022_Q3_NVDA.pdf",
    "clean/2022_Q3_AAPL.pdf",
]
LONG_POLL_S = 30


def raw_pdfium(path: Path) -> int:
    """Extract every page's text in-process with pypdfium2; return the page count."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(path))
    try:
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            textpage.get_text_range()  # the call the service's parse child makes
            textpage.close()
            page.close()
        return len(document)
    finally:
        document.close()


def old_engine(path: Path) -> int:
    """Extract every page's text the way the earlier service did (pdfplumber)."""
    import pdfplumber

    with pdfplumber.open(str(path)) as pdf:
        for page in pdf.pages:
            page.extract_text()
            page.close()
        return len(pdf.pages)


def via_service(server: GunicornServer, path: Path, poll_interval_s: float = 0.0) -> int:
    """Upload the file, poll the job to completion; return the page count."""
    # One keep-alive connection per job, as an HTTP client library keeps it.
    with requests.Session() as client, path.open("rb") as handle:
        response = client.post(
            f"{server.url}/extract/async", files={"file": (path.name, handle)}, timeout=60
        )
        response.raise_for_status()
        status_url = server.url + response.json()["status_url"]
        return poll_to_completion(client, status_url, path, poll_interval_s)


def poll_to_completion(
    client: requests.Session, status_url: str, path: Path, poll_interval_s: float = 0.0
) -> int:
    """Poll the job until it is completed (long-polls when ``poll_interval_s`` is 0);
    return its page count."""
    params = {} if poll_interval_s else {"wait": LONG_POLL_S}
    while True:
        body = client.get(status_url, params=params, timeout=LONG_POLL_S + 30).json()
        if body["status"] == "completed":
            return body["data"]["metadata"]["num_pages"]
        if body["status"] == "failed":
            raise RuntimeError(f"{path.name}: {body['error_code']}")
        time.sleep(poll_interval_s)


def timed(function, *args) -> tuple[float, int]:
    """Return (seconds, result) for one call."""
    start = time.perf_counter()
    pages = function(*args)
    return time.perf_counter() - start, pages


def best_rate(function, args: tuple, repeats: int) -> tuple[float, int]:
    """Return the median pages/s over ``repeats`` runs, and the page count."""
    rates, pages = [], 0
    for _ in range(repeats):
        seconds, pages = timed(function, *args)
        rates.append(pages / seconds)
    return statistics.median(rates), pages


def paired_rates(first: tuple, second: tuple, repeats: int) -> tuple[float, float, int]:
    """Run two (function, args) measurements alternately ``repeats`` times; return each
    one's median pages/s and the page count. Alternating puts both under the same moments
    of a noisy machine, so their ratio holds even when its speed drifts."""
    rates: tuple[list[float], list[float]] = ([], [])
    pages = 0
    for _ in range(repeats):
        for (function, args), found in zip((first, second), rates, strict=True):
            seconds, pages = timed(function, *args)
            found.append(pages / seconds)
    return statistics.median(rates[0]), statistics.median(rates[1]), pages


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-old", action="store_true", help="skip the slow pdfplumber run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every file this many times over (one server) and summarise the ratios",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.0,
        help="poll GET /job every this many seconds instead of long-polling (e.g. 0.01)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp)).start()
        env = {
            "REDIS_URL": redis_server.url,
            "UPLOAD_DIR": tmp,
            "LOG_LEVEL": "WARNING",
            "RATELIMIT_ENABLED": "false",
            # gunicorn's own logger at info: the servers helper waits for each worker's
            # "ready" line; the app's logging stays at WARNING.
            "GUNICORN_CMD_ARGS": "--log-level info",
        }
        try:
            with GunicornServer(env, Path(tmp) / "gunicorn.log", workers=2) as server:
                via_service(server, CORPUS / "clean/minimal-document.pdf")  # warm up
                rounds = [measure_all(server, args) for _ in range(args.rounds)]
        finally:
            redis_server.stop()
    print_table(rounds[-1])
    if len(rounds) > 1:
        print_rounds(rounds)


def measure_all(server: GunicornServer, args: argparse.Namespace) -> list[dict]:
    """Measure every file once; one round."""
    return [measure(server, name, args) for name in LARGE_FILES]


def measure(server: GunicornServer, name: str, args: argparse.Namespace) -> dict:
    """Measure one file on all three paths."""
    path = CORPUS / name
    service_run = (via_service, (server, path, args.poll_interval))
    raw, service, pages = paired_rates((raw_pdfium, (path,)), service_run, args.repeats)
    old = None if args.skip_old else best_rate(old_engine, (path,), 1)[0]
    return {"file": path.name, "pages": pages, "raw": raw, "service": service, "old": old}


def print_table(rows: list[dict]) -> None:
    """Print pages/s per path and the ratios."""
    header = f"{'file':28} {'pages':>5} {'raw p/s':>9} {'service p/s':>11} {'old p/s':>8}"
    print(header + f" {'service/raw':>11} {'service/old':>11}")
    for row in rows:
        old = f"{row['old']:8.1f}" if row["old"] else f"{'-':>8}"
        gain = f"{row['service'] / row['old']:10.1f}x" if row["old"] else f"{'-':>11}"
        print(
            f"{row['file']:28} {row['pages']:5d} {row['raw']:9.1f} {row['service']:11.1f} "
            f"{old} {row['service'] / row['raw']:11.2f} {gain}"
        )
    big = [r for r in rows if r["pages"] >= 50]
    total = sum(r["pages"] for r in big)
    print(f"\n50+ page documents: service/raw = {large_ratio(rows):.2f} over {total} pages")


def large_ratio(rows: list[dict]) -> float:
    """Return service/raw over the 50+ page documents together (time-weighted)."""
    big = [r for r in rows if r["pages"] >= 50]
    raw_s = sum(r["pages"] / r["raw"] for r in big)
    return raw_s / sum(r["pages"] / r["service"] for r in big)


def print_rounds(rounds: list[list[dict]]) -> None:
    """Print each file's service/raw in every round, and their median and range."""
    print(f"\nservice/raw over {len(rounds)} rounds: median (min-max) and each round")
    for index, row in enumerate(rounds[0]):
        ratios = [found[index]["service"] / found[index]["raw"] for found in rounds]
        print(f"{row['file']:28} {row['pages']:5d} {spread(ratios)}")
    print(f"{'50+ page documents':34} {spread([large_ratio(rows) for rows in rounds])}")


def spread(ratios: list[float]) -> str:
    """Return "median (min-max): each" for a list of ratios."""
    each = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    low, high = min(ratios), max(ratios)
    return f"{statistics.median(ratios):5.2f} ({low:.2f}-{high:.2f}): {each}"


if __name__ == "__main__":
    main()
