"""Same request, same job: Idempotency-Key handling and (DEDUPE=true) reuse of results.

An ``Idempotency-Key`` maps (for the active-job TTL) to the job it created and a fingerprint
of the request: the file's SHA-256 and every option. The same key with the same fingerprint
returns that job; with a different one it is a conflict (409). With ``DEDUPE=true`` a
completed result is indexed by the file's SHA-256 and the options that shape the result;
an identical later upload (without a password) gets a new job that is completed at once
with a copy of that result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from errors import IdempotencyConflict
from jobstore import JobStatus, JobStore, Stage
from validation import JobOptions

RESULT_OPTIONS = ("extract_type", "pages", "include_tables", "chunk_size", "chunk_overlap")


def _digest(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Fingerprints:
    """The digests of one request: the file alone, the file with result options, and all."""

    file: str
    content: str
    request: str

    @classmethod
    def of(cls, file_hash: str, options: JobOptions, webhook_url: str | None) -> Fingerprints:
        """Combine the upload's SHA-256 (hex, from screening) with the options."""
        public = options.public()
        shaping = {name: public.get(name) for name in RESULT_OPTIONS}
        everything = {**public, "webhook_url": webhook_url, "password": bool(options.password)}
        return cls(file_hash, _digest(file_hash, shaping), _digest(file_hash, everything))


def claim_idempotency_key(store: JobStore, key: str, request: str, job_id: str) -> dict | None:
    """Bind ``key`` to the new job, or return the job it already names (409 if it differs)."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    value = json.dumps({"job_id": job_id, "request": request})
    present = store.leases.claim("idem", digest, value, store.ttls.active)
    if present is None:
        return None
    prior = json.loads(present)
    if prior.get("request") != request:
        raise IdempotencyConflict()
    record = store.get(prior.get("job_id", ""))
    if record is None:  # its job was never stored, or is gone: the key starts afresh
        store.leases.put("idem", digest, value, store.ttls.active)
    return record


def remember_result(store: JobStore, record: dict) -> None:
    """Index a completed job's result by its content fingerprint (DEDUPE)."""
    content = record.get("dedupe_key")
    if content and not record.get("has_password"):
        store.leases.put("dedupe", content, record["job_id"], store.ttls.completed)


def reuse_result(store: JobStore, content: str, sub: Any) -> dict | None:
    """Return a new, already completed job holding a copy of an identical earlier result.

    ``sub`` is the new upload's ``jobmanager.Submission``.
    """
    options: JobOptions = sub.options
    prior_id = store.leases.lookup("dedupe", content)
    prior = store.get(prior_id) if prior_id else None
    if prior is None or prior["status"] != JobStatus.COMPLETED.value:
        return None
    return store.create(
        {
            "job_id": sub.job_id,
            "status": JobStatus.COMPLETED.value,
            "stage": Stage.DONE.value,
            "progress": 100,
            "message": "Extraction complete (reused the result of an identical upload).",
            "pages_done": prior.get("pages_done"),
            "pages_total": prior.get("pages_total"),
            "filename": options.filename,
            "options": options.public(),
            "dedupe_key": content,
            "deduplicated_from": prior_id,
            "webhook_url": sub.webhook_url,
            "owner": sub.owner,
            "screening": sub.screening,
            "data": prior.get("data"),
        }
    )
