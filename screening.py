"""Security screening of one job: antivirus and byte scan at upload, then verdict and policies.

At upload (before the job is queued): clamd scans the file (``MalwareDetected`` and the
fail modes come from ``antivirus``), and the file's sha256 and MIME type are noted. In the
pipeline: the pdfid-style byte scan runs while the parse child opens the file (it decides
nothing at upload, and took 12 ms of a 3.8 MB upload's answer), the child's structure walk
joins it in ``data.security`` (``riskscan.assess``), ``PDF_REJECT_FEATURES`` may refuse the
file, and the sanitized text goes through the dangerous-content detector per
``DANGEROUS_CONTENT``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from antivirus import Antivirus, ensure_clean
from config import Settings, split_list
from content_safety import apply_policy, scan_text
from errors import DangerousContent, PdfFeatureRejected
from riskscan import assess, rejected_features, scan_bytes, validate_features
from validation import detect_mime

log = logging.getLogger(__name__)

HASH_BLOCK = 1024 * 1024


def file_sha256(path: Path) -> str:
    """Return the file's SHA-256 in hex, reading it block by block."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class Screener:
    """The security checks of one service instance, built once from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.antivirus = Antivirus(settings)
        self.reject = validate_features(split_list(settings.pdf_reject_features.lower()))
        self.dangerous_content = settings.dangerous_content

    def screen_upload(self, path: Path, sha256: str | None = None) -> dict[str, Any]:
        """Antivirus-scan a stored upload and hash it (unless its ``sha256`` is given); raise
        MalwareDetected or the antivirus fail-mode errors."""
        sha256 = sha256 or file_sha256(path)
        verdict = self.antivirus.scan_file(str(path))
        if verdict["status"] == "infected":
            log.warning("upload %s refused: %s", sha256, verdict["signature"])
        ensure_clean(verdict)
        return {"sha256": sha256, "mime": detect_mime(path), "antivirus": verdict}

    def with_byte_scan(self, screening: dict[str, Any], path: Path) -> dict[str, Any]:
        """Return ``screening`` with the upload's byte scan (kept when it has one)."""
        if "byte_scan" in screening:
            return screening
        try:
            byte_scan = scan_bytes(str(path))
        except OSError:  # reported as "unknown" risk, never as low
            log.exception("byte scan of %s failed", screening.get("sha256"))
            byte_scan = None
        return {**screening, "byte_scan": byte_scan}

    def report(self, screening: dict[str, Any], structure: list[dict] | None) -> dict[str, Any]:
        """Return ``data.security``: both scans' indicators, the risk, hash, MIME, antivirus."""
        return assess(
            screening.get("byte_scan"),
            structure,
            screening["sha256"],
            screening["mime"],
            screening["antivirus"],
        )

    def enforce_features(self, security: dict[str, Any]) -> None:
        """Raise PdfFeatureRejected when the file has a feature PDF_REJECT_FEATURES refuses."""
        found = rejected_features(security, self.reject) if self.reject else []
        if found:
            raise PdfFeatureRejected(
                f"The PDF was refused: it contains {', '.join(found)} (PDF_REJECT_FEATURES)."
            )

    def check_text(self, pages: list[tuple[int, str]]) -> list[str]:
        """Return dangerous-content warnings, or raise DangerousContent in reject mode."""
        return self.judge_text(self.scan_pages(pages))

    def scan_pages(self, pages: list[tuple[int, str]]) -> list[dict[str, Any]]:
        """Return the dangerous-content findings of these pages (none when the check is off)."""
        return [] if self.dangerous_content == "off" else scan_text(pages)

    def scan_page(self, number: int, text: str) -> list[dict[str, Any]]:
        """Return one page's findings, so the scan can run as pages arrive."""
        return self.scan_pages([(number, text)])

    def judge_text(self, findings: list[dict[str, Any]]) -> list[str]:
        """Apply DANGEROUS_CONTENT to the findings (in page order): warnings, or raise."""
        if self.dangerous_content == "off":
            return []
        warnings, reject = apply_policy(self.dangerous_content, findings)
        if reject:
            raise DangerousContent(" ".join(warnings))
        return warnings
