"""Benchmark: the cost of parsing in an isolated child instead of in-process.

Run from the project root: `.venv/bin/python bench/bench_isolation.py` (add
`--memory-floor` to also find the smallest EXTRACT_MEMORY_MB each large corpus file needs).
In one run it measures: a cold child's spawn + import time; the per-job overhead of a cold
child and of a child forked from the warm zygote (job wall time minus in-process pypdfium2 on
a 1-page file); and pages/s for a 1-page and the 352-page freeculture.pdf, raw in-process
pypdfium2 against the child path (cold and forked), with their ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_extraction import raw_pdfium  # noqa: E402 - one baseline for both benchmarks

from extraction import (  # noqa: E402
    ChildLauncher,
    ChildLimits,
    ExtractionProcess,
    ExtractRequest,
    spawn_child,
)

CORPUS = Path(os.environ.get("PDF_CORPUS", ROOT.parent / "shared" / "corpus"))
ONE_PAGE = CORPUS / "clean/minimal-document.pdf"
BOOK = CORPUS / "clean/freeculture.pdf"
FLOOR_FILES = [
    "clean/freeculture.pdf", "clean/GeoTopo-komprimiert.pdf", "clean/2023_Q1_MSFT.pdf",
    "clean/2022_Q3_INTC.pdf", "clean/2022_Q3_AMZN.pdf", "malformed/unreadablemetadata.pdf",
]  # fmt: skip
FLOOR_STEPS_MB = [64, 80, 96, 112, 128, 192, 256, 384, 512, 768, 1024, 1536]


def via_child(path: Path, launcher: ChildLauncher | None, limits: ChildLimits) -> int:
    """Parse in a child (forked from the zygote when given); return the pages received."""
    request = ExtractRequest(str(path))
    with ExtractionProcess(request, limits=limits, launcher=launcher) as process:
        return sum(event["type"] == "page" for event in process.events())


def seconds_of(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def median_seconds(function, args: tuple, repeats: int, pause: float = 0.0) -> float:
    """Median wall time over ``repeats`` calls, ``pause`` seconds apart."""
    times = []
    for _ in range(repeats):
        times.append(seconds_of(function, *args))
        time.sleep(pause)
    return statistics.median(times)


def spawn_and_import(limits: ChildLimits) -> None:
    """Start a child that sets limits and imports the parsers, then let it exit (no request)."""
    proc = spawn_child(limits)
    proc.communicate(b"")
    if proc.returncode != 0:
        raise RuntimeError("the child failed to start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory-floor", action="store_true")
    args = parser.parse_args()
    limits = ChildLimits()
    raw_pdfium(ONE_PAGE)  # import and warm the in-process library
    launcher = ChildLauncher(limits)
    via_child(ONE_PAGE, launcher, limits)  # starts the zygote
    try:
        spawn = median_seconds(spawn_and_import, (limits,), args.repeats)
        print(f"cold child spawn + limits + import: {spawn * 1000:.0f} ms (median)")
        rows = []
        for path in (ONE_PAGE, BOOK):
            raw = median_seconds(raw_pdfium, (path,), args.repeats)
            cold = median_seconds(via_child, (path, None, limits), args.repeats)
            warm = median_seconds(via_child, (path, launcher, limits), args.repeats)
            rows.append((path.name, raw_pdfium(path), raw, cold, warm))
    finally:
        launcher.close()
    one_page = rows[0]
    print(f"per-job overhead, cold child: {(one_page[3] - one_page[2]) * 1000:.0f} ms")
    print(f"per-job overhead, forked from the zygote: {(one_page[4] - one_page[2]) * 1000:.0f} ms")
    print(f"\n{'file':24} {'pages':>5} {'raw p/s':>9} {'cold p/s':>9} {'warm p/s':>9} "
          f"{'cold/raw':>8} {'warm/raw':>8}")  # fmt: skip
    for name, pages, raw, cold, warm in rows:
        print(
            f"{name:24} {pages:5d} {pages / raw:9.1f} {pages / cold:9.1f} {pages / warm:9.1f} "
            f"{raw / cold:8.2f} {raw / warm:8.2f}"
        )
    if args.memory_floor:
        print_memory_floor()


def completes(path: Path, memory_mb: int) -> bool:
    """Tell whether a child with this address-space limit extracts the file without error."""
    limits = ChildLimits(memory_mb=memory_mb)
    try:
        via_child(path, None, limits)
    except Exception:
        return False
    return True


def print_memory_floor() -> None:
    """Print the smallest EXTRACT_MEMORY_MB (of FLOOR_STEPS_MB) each large file needs."""
    print(f"\n{'file':34} {'smallest EXTRACT_MEMORY_MB that works':>38}")
    for name in FLOOR_FILES:
        floor = next((mb for mb in FLOOR_STEPS_MB if completes(CORPUS / name, mb)), None)
        print(f"{name:34} {floor if floor else 'none up to 1536':>38}")
    print(f"(python + parsers alone: {import_floor()} MB of address space)")


def import_floor() -> int:
    """Return the child's address space (VmPeak, MB) after import, before any parse."""
    limits = ChildLimits(memory_mb=0)
    proc = spawn_child(limits)
    time.sleep(1.5)
    status = Path(f"/proc/{proc.pid}/status").read_text()
    proc.communicate(b"")
    peak = next(line for line in status.splitlines() if line.startswith("VmPeak"))
    return int(peak.split()[1]) // 1024


if __name__ == "__main__":
    main()
