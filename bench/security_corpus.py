"""Run the whole corpus through the job pipeline and report the security figures.

Prints, per corpus class: risk levels from data.security of the completed jobs and failed
jobs by error code; the dangerous-content detector's findings (pages flagged / pages read)
with DANGEROUS_CONTENT=flag; then the risk of every file (the scans alone, so failed jobs
count too) and the time spent in the byte scan and the structure walk.

    .venv/bin/python bench/security_corpus.py
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from jobmanager import JobManager  # noqa: E402
from jobstore import open_job_store  # noqa: E402
from riskscan import assess, scan_bytes, structure_event  # noqa: E402
from validation import parse_options  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
PASSWORDS_KEY = "password"
NOTABLE = frozenset({
    "/EmbeddedFile", "embedded_file", "/JavaScript", "/JS", "javascript", "/Launch", "launch",
    "/JBIG2Decode", "bytes_after_eof", "structure_incomplete", "open_action", "page_aa",
    "/Encrypt",
})  # fmt: skip


def run_corpus() -> None:
    """Submit every corpus file, wait for each, and print the tables."""
    files = json.loads((CORPUS / "manifest.json").read_text())["files"]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(redis_url=None, upload_dir=tmp, dangerous_content="flag")
        store, _ = open_job_store(settings)
        jobs = JobManager(settings, store)
        risk: dict[str, Counter] = defaultdict(Counter)
        flagged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        examples = []
        for entry in files:
            outcome = run_one(jobs, store, settings, entry)
            cls = entry["class"]
            if outcome["status"] != "completed":
                risk[cls][f"failed:{outcome.get('error_code')}"] += 1
                continue
            data = outcome["data"]
            risk[cls][data["security"]["risk"]] += 1
            hits = [w for w in data["warnings"] if w.startswith("Text that looks like")]
            flagged[cls][0] += sum(w.count("page") and _pages_in(w) for w in hits)
            flagged[cls][1] += len(data.get("text", {}))
            examples += [(entry["file"], w) for w in hits]
        jobs.shutdown()
    print("risk by class:")
    for cls, counts in sorted(risk.items()):
        print(f"  {cls:12s} {dict(sorted(counts.items()))}")
    print("dangerous content (DANGEROUS_CONTENT=flag), pages flagged / pages read:")
    for cls, (hit, total) in sorted(flagged.items()):
        print(f"  {cls:12s} {hit}/{total}")
    for name, warning in examples:
        print(f"  flagged: {name}: {warning}")


def _pages_in(warning: str) -> int:
    """Return how many pages a findings_to_warnings sentence names."""
    listed = warning.split(" page", 1)[1].split(" (for example", 1)[0]
    listed = listed.removeprefix("s").strip()
    more = int(listed.split(" and ")[1].split()[0]) if " and " in listed else 0
    return len(listed.split(" and ")[0].split(",")) + more


def run_one(jobs: JobManager, store, settings: Settings, entry: dict) -> dict:
    """Submit one corpus file (with its password when it has one) and wait for the end."""
    path = CORPUS / entry["file"]
    form = {}
    if entry.get(PASSWORDS_KEY):
        form["password"] = entry[PASSWORDS_KEY]
    try:
        options = parse_options(form, path.name, settings)
        job = jobs.submit(io.BytesIO(path.read_bytes()), options)
    except Exception as exc:  # refused at upload (not a PDF at byte 0, ...)
        return {"status": "refused", "error_code": getattr(exc, "code", type(exc).__name__)}
    jobs.wait(job["job_id"], 600)
    return store.get(job["job_id"])


def scan_corpus() -> None:
    """Print risk levels of every corpus file (failed jobs included) and the scans' time."""
    files = json.loads((CORPUS / "manifest.json").read_text())["files"]
    size = sum((CORPUS / e["file"]).stat().st_size for e in files)
    risk: dict[str, Counter] = defaultdict(Counter)
    byte_s = walk_s = 0.0
    for entry in files:
        path = str(CORPUS / entry["file"])
        started = time.perf_counter()
        byte_scan = scan_bytes(path)
        byte_s += time.perf_counter() - started
        started = time.perf_counter()
        structure = structure_event(path, entry.get(PASSWORDS_KEY))["indicators"]
        walk_s += time.perf_counter() - started
        verdict = assess(byte_scan, structure, "", "application/pdf", {})
        risk[entry["class"]][verdict["risk"]] += 1
        if verdict["risk"] != "low":
            keys = sorted({i["key"] for i in verdict["indicators"]} & NOTABLE)
            print(f"  {verdict['risk']:8s} {entry['file']}: {', '.join(keys)}")
    print("risk by class, every file (scans alone):")
    for cls, counts in sorted(risk.items()):
        print(f"  {cls:12s} {dict(sorted(counts.items()))}")
    print(f"corpus: {len(files)} files, {size / 1e6:.1f} MB")
    rate = size / 1e6 / byte_s
    print(f"byte scan {byte_s:.2f} s ({rate:.0f} MB/s), structure walk {walk_s:.2f} s")


if __name__ == "__main__":
    run_corpus()
    scan_corpus()
