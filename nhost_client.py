"""Push a finished job's document and chunks to Nhost (Hasura GraphQL).

Two ways to write: the admin secret (a backend; a ``user_id`` is only recorded in the row) or
the end user's own Nhost access token, forwarded so Hasura's row permissions decide too.
Every write is an upsert keyed by ``job_id`` / ``(document_id, chunk_index)``, which is what
makes retrying a POST safe. Who a push writes for is decided in ``nhost_auth``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from config import Settings
from nhost_auth import NhostIdentity, NhostNotConfigured, parse_jwt_secret

log = logging.getLogger(__name__)

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WRITING_STATUS = "processing"
READY_STATUS = "ready_for_embedding"
DOCUMENT_UPDATE_COLUMNS = [
    "user_id",
    "filename",
    "upload_device",
    "page_count",
    "metadata",
    "status",
]
CHUNK_UPDATE_COLUMNS = ["content", "char_count", "start_page", "end_page", "pages"]
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS = 5
PROBE_TIMEOUT = (2.0, 3.0)
ERROR_KINDS = {
    "validation-failed": ("nhost_invalid", "Nhost rejected the data"),
    "data-exception": ("nhost_invalid", "Nhost rejected the data"),
    "constraint-violation": ("nhost_constraint", "Nhost refused the write (database constraint)"),
    "permission-error": ("nhost_forbidden", "Nhost's permissions do not let this user write it"),
    "access-denied": ("nhost_auth", "Nhost did not accept the credentials"),
    "invalid-jwt": ("nhost_auth", "Nhost did not accept the credentials"),
    "invalid-headers": ("nhost_auth", "Nhost did not accept the credentials"),
    "jwt-invalid-claims": ("nhost_auth", "Nhost did not accept the credentials"),
}


# ---------------------------------------------------------------- configuration and health


def config_problems(settings: Settings) -> list[str]:
    """Return sentences describing Nhost misconfiguration (never quoting a secret)."""
    problems = []
    url, has_secret = (
        settings.nhost_url,
        bool(settings.nhost_admin_secret or settings.nhost_jwt_secret),
    )
    if not settings.nhost_graphql_url and bool(settings.nhost_subdomain) != bool(
        settings.nhost_region
    ):
        problems.append("NHOST_SUBDOMAIN and NHOST_REGION must be set together.")
    if url and not url.startswith(("https://", "http://")):
        problems.append("The Nhost GraphQL URL must start with https://.")
    if url and not has_secret:
        problems.append("An Nhost URL is set but neither NHOST_ADMIN_SECRET nor NHOST_JWT_SECRET.")
    if has_secret and not url:
        problems.append("Nhost secrets are set but no URL (NHOST_GRAPHQL_URL or SUBDOMAIN+REGION).")
    if settings.nhost_jwt_secret:
        try:
            parse_jwt_secret(settings.nhost_jwt_secret)
        except ValueError as exc:
            problems.append(str(exc))
    for name in (settings.nhost_documents_table, settings.nhost_chunks_table):
        if not TABLE_NAME.match(name):
            problems.append(f"Nhost table name {name[:40]!r} is not a plain SQL identifier.")
    return problems


def nhost_status(settings: Settings, session: requests.Session | None = None) -> str:
    """Return "not_configured", "configured" (a trivial query answers) or "unreachable"."""
    url = settings.nhost_url
    if not url or not (settings.nhost_admin_secret or settings.nhost_jwt_secret):
        return "not_configured"
    http = session or requests.Session()
    try:
        response = http.post(
            url,
            json={"query": "{ __typename }"},
            headers=_probe_headers(settings),
            timeout=PROBE_TIMEOUT,
            allow_redirects=False,
        )
        body = response.json()
    except (requests.RequestException, ValueError):
        return "unreachable"
    finally:
        if session is None:
            http.close()
    return "configured" if _probe_answered(settings, response.status_code, body) else "unreachable"


def _probe_headers(settings: Settings) -> dict[str, str]:
    if settings.nhost_admin_secret:
        return {"x-hasura-admin-secret": settings.nhost_admin_secret}
    return {}


def _probe_answered(settings: Settings, status_code: int, body: Any) -> bool:
    if status_code != 200 or not isinstance(body, dict):
        return False
    if not settings.nhost_admin_secret:
        # JWT-only mode: an answer of any GraphQL shape (even access-denied) proves it is there.
        return "data" in body or "errors" in body
    if (body.get("data") or {}).get("__typename"):
        return True
    log.warning("Nhost answered the health probe with an error: is NHOST_ADMIN_SECRET right?")
    return False


# ---------------------------------------------------------------- retries


def request_timeouts(total_s: float) -> tuple[float, float]:
    """Return the (connect, read) timeout of one HTTP attempt within a total budget."""
    return (min(3.0, total_s / 10), min(10.0, total_s / 4))


def retry_policy(total_s: float) -> Retry:
    """Return a urllib3 Retry whose worst case (attempts, waits) stays under total_s."""
    connect, read = request_timeouts(total_s)
    wait_max = min(8.0, total_s / 6)
    attempts = max(
        n
        for n in range(1, MAX_ATTEMPTS + 1)
        if n * (connect + read) + (n - 1) * wait_max <= total_s
    )
    return Retry(
        total=attempts - 1,
        allowed_methods=frozenset({"POST"}),  # safe: every mutation here is an upsert
        status_forcelist=RETRY_STATUSES,
        backoff_factor=wait_max / 4,
        backoff_max=wait_max,
        retry_after_max=wait_max,  # type: ignore[arg-type]  # urllib3 compares, floats are fine
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def retrying_session(settings: Settings) -> requests.Session:
    """Return a requests Session that retries 5xx, 429 and network errors within the budget."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry_policy(settings.nhost_timeout_s))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# ---------------------------------------------------------------- the push


class _PushFailed(Exception):
    def __init__(self, code: str, message: str, status: str = "failed") -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class _Progress:
    document_id: str | None = None
    chunks_written: int = 0


class NhostClient:
    """Write documents and their chunks to Nhost's GraphQL API, idempotently per job."""

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        for name in (settings.nhost_documents_table, settings.nhost_chunks_table):
            if not TABLE_NAME.match(name):
                raise NhostNotConfigured("An Nhost table name setting is not a plain identifier.")
        self.settings = settings
        self.url = settings.nhost_url
        self.documents_table = settings.nhost_documents_table
        self.chunks_table = settings.nhost_chunks_table
        self.queries = _mutations(self.documents_table, self.chunks_table)
        self.session = session or retrying_session(settings)
        self.timeouts = request_timeouts(settings.nhost_timeout_s)

    def push_document(
        self,
        *,
        job_id: str,
        filename: str | None,
        upload_device: str | None,
        user_id: str | None = None,
        data: dict,
        identity: NhostIdentity,
    ) -> dict:
        """Write one job's document and chunks; report the outcome, never raise for Nhost."""
        progress = _Progress()
        try:
            self._check_ready(identity, user_id)
            row = _document_row(job_id, filename, upload_device, identity.user_id, data)
            self._write(row, _chunks_of(data), identity, progress)
            result = _result("stored", progress)
        except _PushFailed as exc:
            result = _result(exc.status, progress, exc.code, self._redact(exc.message, identity))
        except Exception:  # a failed push must never fail the extraction
            log.exception("unexpected error pushing job %s to Nhost", job_id)
            result = _result(
                "failed", progress, "nhost_error", "Unexpected error writing to Nhost."
            )
        log.info(
            "nhost push job=%s status=%s document=%s chunks=%d code=%s",
            job_id,
            result["status"],
            result["document_id"],
            result["chunks_written"],
            result["error_code"],
        )
        return result

    def _check_ready(self, identity: NhostIdentity, user_id: str | None) -> None:
        if not self.url:
            raise _PushFailed("nhost_not_configured", "Nhost is not configured.", "skipped")
        if identity.uses_admin_secret and not self.settings.nhost_admin_secret:
            raise _PushFailed(
                "nhost_not_configured",
                "NHOST_ADMIN_SECRET is not set: only requests with an Nhost user token can push.",
                "skipped",
            )
        if user_id is not None and user_id != identity.user_id:
            raise _PushFailed("forbidden_user", "user_id differs from the resolved Nhost identity.")

    def _write(self, row: dict, chunks: list[dict], identity: NhostIdentity, progress: _Progress):
        deadline = time.monotonic() + self.settings.nhost_timeout_s
        call = functools.partial(
            self._call, headers=_auth_headers(self.settings, identity), deadline=deadline
        )
        progress.document_id = self._upsert_document(call, row)
        rows = [_chunk_row(progress.document_id, chunk) for chunk in chunks]
        for start in range(0, len(rows), self.settings.nhost_batch_size):
            batch = rows[start : start + self.settings.nhost_batch_size]
            progress.chunks_written += self._upsert_chunks(call, batch)
        if progress.chunks_written != len(rows):
            raise _PushFailed(
                "nhost_incomplete", f"Nhost stored {progress.chunks_written} of {len(rows)} chunks."
            )
        self._mark_ready(call, progress.document_id)

    def _upsert_document(self, call, row: dict) -> str:
        conflict = {
            "constraint": f"{self.documents_table}_job_id_key",
            "update_columns": DOCUMENT_UPDATE_COLUMNS,
        }
        data = call("document", {"object": row, "on_conflict": conflict})
        document = data.get(f"insert_{self.documents_table}_one")
        if not isinstance(document, dict) or not document.get("id"):
            raise _PushFailed("nhost_incomplete", "Nhost returned no id for the document.")
        return str(document["id"])

    def _upsert_chunks(self, call, batch: list[dict]) -> int:
        conflict = {
            "constraint": f"{self.chunks_table}_document_id_chunk_index_key",
            "update_columns": CHUNK_UPDATE_COLUMNS,
        }
        data = call("chunks", {"objects": batch, "on_conflict": conflict})
        answer = data.get(f"insert_{self.chunks_table}") or {}
        return int(answer.get("affected_rows") or 0)

    def _mark_ready(self, call, document_id: str) -> None:
        data = call("ready", {"id": document_id, "status": READY_STATUS})
        if not data.get(f"update_{self.documents_table}_by_pk"):
            raise _PushFailed("nhost_incomplete", "Nhost did not mark the document ready.")

    def _call(self, name: str, variables: dict, *, headers: dict, deadline: float) -> dict:
        if time.monotonic() > deadline:
            raise _PushFailed("nhost_timeout", "Writing to Nhost took longer than NHOST_TIMEOUT_S.")
        try:
            body = json.dumps(
                {"query": self.queries[name], "variables": variables},
                ensure_ascii=False,
                allow_nan=False,
            ).encode()
        except (TypeError, ValueError):
            raise _PushFailed("nhost_invalid", "The job result cannot be sent as JSON.") from None
        try:
            response = self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeouts, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise _PushFailed(
                "nhost_unreachable", f"Nhost could not be reached ({type(exc).__name__})."
            ) from None
        return _graphql_data(response)

    def _redact(self, message: str, identity: NhostIdentity) -> str:
        for secret in (self.settings.nhost_admin_secret, identity.token):
            if secret:
                message = message.replace(secret, "[redacted]")
        return message


def _mutations(docs: str, chunks: str) -> dict[str, str]:
    # Table names (validated identifiers) are the only thing interpolated; values are variables.
    return {
        "document": f"mutation UpsertDocument($object: {docs}_insert_input!, "
        f"$on_conflict: {docs}_on_conflict!) {{ insert_{docs}_one(object: $object, "
        "on_conflict: $on_conflict) { id } }",
        "chunks": f"mutation UpsertChunks($objects: [{chunks}_insert_input!]!, "
        f"$on_conflict: {chunks}_on_conflict!) {{ insert_{chunks}(objects: $objects, "
        "on_conflict: $on_conflict) { affected_rows } }",
        "ready": f"mutation MarkDocumentReady($id: uuid!, $status: String!) {{ update_{docs}_by_pk("
        "pk_columns: {id: $id}, _set: {status: $status}) { id } }",
    }


def _auth_headers(settings: Settings, identity: NhostIdentity) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if identity.token:
        headers["Authorization"] = f"Bearer {identity.token}"
    else:
        headers["x-hasura-admin-secret"] = settings.nhost_admin_secret or ""
    return headers


def _graphql_data(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("errors"):
        raise _graphql_failure(body["errors"][0])
    if response.status_code != 200:
        raise _PushFailed("nhost_http_error", _http_sentence(response.status_code))
    if not isinstance(body, dict):
        raise _PushFailed("nhost_bad_response", "Nhost answered with something that is not JSON.")
    return body.get("data") or {}


def _graphql_failure(error: Any) -> _PushFailed:
    error = error if isinstance(error, dict) else {}
    code = str((error.get("extensions") or {}).get("code") or "unknown")
    ours, what = ERROR_KINDS.get(code, ("nhost_error", "Nhost rejected the write"))
    message = str(error.get("message") or "")[:300]
    return _PushFailed(ours, f"{what} ({code[:40]}): {message}")


def _http_sentence(status: int) -> str:
    if status == 404:
        return "Nhost answered HTTP 404: check the GraphQL URL (it ends in /v1)."
    if 300 <= status < 400:
        return f"Nhost answered a redirect (HTTP {status}): use the https:// GraphQL URL."
    if status == 429:
        return "Nhost kept answering 429 (rate limited) after retries."
    return f"Nhost answered HTTP {status}" + (" after retries." if status >= 500 else ".")


def _document_row(
    job_id: str, filename: str | None, upload_device: str | None, user_id: str | None, data: dict
) -> dict:
    metadata = data.get("metadata") or {}
    return _without_nul(
        {
            "job_id": job_id,
            "user_id": user_id,
            "filename": filename,
            "upload_device": upload_device,
            "page_count": metadata.get("num_pages"),
            "metadata": metadata,
            "status": WRITING_STATUS,
        }
    )


def _chunks_of(data: dict) -> list[dict]:
    chunks = data.get("chunks") or []
    if not isinstance(chunks, list) or not all(
        isinstance(c, dict) and isinstance(c.get("chunk_index"), int) for c in chunks
    ):
        raise _PushFailed("nhost_invalid", "The job result's chunks are malformed.")
    return chunks


def _chunk_row(document_id: str, chunk: dict) -> dict:
    text = str(chunk.get("text") or "")
    pages = list(chunk.get("pages") or [])
    return {
        "document_id": document_id,
        "chunk_index": chunk["chunk_index"],
        "content": text.replace("\x00", ""),
        "char_count": chunk.get("char_count", len(text)),
        "start_page": chunk.get("start_page", pages[0] if pages else None),
        "end_page": chunk.get("end_page", pages[-1] if pages else None),
        "pages": pages,
    }


def _without_nul(value: Any) -> Any:
    # PostgreSQL text and jsonb cannot hold U+0000, which PDF text sometimes contains.
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _result(status: str, progress: _Progress, code: str | None = None, error: str | None = None):
    return {
        "status": status,
        "document_id": progress.document_id,
        "chunks_written": progress.chunks_written,
        "error_code": code,
        "error": error,
    }
