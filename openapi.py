"""The OpenAPI 3.1 description of the HTTP API, built in Python, and a self-contained docs page.

Kept next to the routes by a test that compares it with Flask's URL map, and checked against
the running server by schemathesis (tests/test_openapi.py).
"""

from __future__ import annotations

import html
import json
from functools import cache
from typing import Any

from errors import EXTRACTION_ERRORS
from jobstore import JobStatus, Stage
from validation import EXTRACT_TYPES, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE

TITLE = "PDF Extractor API"
VERSION = "1.0.0"
JSON = "application/json"
REF = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    """Return a $ref to a component schema."""
    return {"$ref": REF + name}


def nullable(kind: str, **extra: Any) -> dict[str, Any]:
    """Return a schema of the given type or null."""
    return {"type": [kind, "null"], **extra}


def json_response(description: str, schema: str, headers: dict | None = None) -> dict:
    """Return a JSON response object."""
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": ref(schema)}},
    }
    if headers:
        response["headers"] = headers
    return response


def error(description: str) -> dict:
    """Return an error response with the one error body shape."""
    return json_response(description, "Error")


def caller_errors() -> dict:
    """Return the refusals any identified route may answer."""
    return {
        "401": error("unauthorized (API key), invalid_token or token_expired (Nhost token)"),
        "403": error("forbidden_user: the token's user may not act for that user_id"),
        "429": {
            **error("rate_limited, or busy (this worker's queue is full): see Retry-After"),
            "headers": RETRY_AFTER,
        },
    }


# Callers identify with X-API-Key, or with an end user's Nhost token; {} = open (no API_KEYS).
CALLER_SECURITY = [{"apiKey": []}, {"nhostToken": []}, {}]
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "same key, file and options within the job TTL = the same job",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
REQUEST_ID = {
    "X-Request-ID": {
        "description": "the caller's X-Request-ID when it is a safe token, else a new one",
        "schema": {"type": "string"},
    }
}


def error_schema() -> dict:
    """Return the one error body: success false, a sentence, a stable code, maybe details."""
    return {
        "type": "object",
        "required": ["success", "error", "error_code"],
        "properties": {
            "success": {"const": False},
            "error": {"type": "string"},
            "error_code": {"type": "string", "pattern": "^[a-z0-9_]+$"},
            "job_id": {"type": "string"},
            "status_url": {"type": "string"},
            "field": {"type": "string"},
            "nhost_result": {"type": "object"},
        },
    }


def metadata_schema() -> dict:
    """Return the document metadata schema."""
    strings = (
        "title",
        "author",
        "subject",
        "creator",
        "producer",
        "creation_date",
        "modification_date",
        "pdf_version",
    )
    properties: dict[str, Any] = {name: nullable("string") for name in strings}
    properties.update(
        num_pages={"type": "integer", "minimum": 0},
        encrypted={"type": "boolean"},
        title_inferred={"type": "boolean"},
    )
    return {"type": "object", "properties": properties}


def data_schema() -> dict:
    """Return the extraction result schema."""
    page = {
        "type": "object",
        "required": ["page_number", "text", "char_count"],
        "properties": {
            "page_number": {"type": "integer", "minimum": 1},
            "text": {"type": "string"},
            "char_count": {"type": "integer", "minimum": 0},
        },
    }
    chunk = {
        "type": "object",
        "required": ["chunk_index", "text", "char_count", "pages", "start_page", "end_page"],
        "properties": {
            "chunk_index": {"type": "integer", "minimum": 0},
            "text": {"type": "string", "maxLength": MAX_CHUNK_SIZE},
            "char_count": {"type": "integer", "minimum": 0},
            "pages": {"type": "array", "items": {"type": "integer", "minimum": 1}},
            "start_page": {"type": "integer", "minimum": 1},
            "end_page": {"type": "integer", "minimum": 1},
        },
    }
    return {
        "type": "object",
        "required": ["metadata", "warnings"],
        "properties": {
            "metadata": ref("Metadata"),
            "text": {
                "type": "object",
                "description": "keys page_1, page_2, ... (only the pages asked for)",
                "additionalProperties": page,
            },
            "chunks": {"type": "array", "items": chunk},
            "tables": {
                "type": "object",
                "description": "keys page_N: that page's tables (only when asked for)",
                "additionalProperties": {"type": "array"},
            },
            "failed_pages": {"type": "array", "items": {"type": "object"}},
            "security": {
                "type": "object",
                "description": "screening report: scanner verdict, risk level, PDF features",
            },
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
    }


def job_schema() -> dict:
    """Return the job status schema."""
    failed_codes = ", ".join(sorted(EXTRACTION_ERRORS))
    return {
        "type": "object",
        "required": ["job_id", "status", "progress", "stage", "message"],
        "properties": {
            "job_id": {"type": "string"},
            "status": {"enum": [s.value for s in JobStatus]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "stage": {"enum": [s.value for s in Stage]},
            "message": nullable("string"),
            "pages_done": nullable("integer", minimum=0),
            "pages_total": nullable("integer", minimum=0),
            "filename": nullable("string"),
            "created_at": nullable("string"),
            "updated_at": nullable("string"),
            "expires_at": nullable("string"),
            "data": ref("ExtractionData"),
            "error": nullable("string"),
            "error_code": nullable("string", description=f"when failed: {failed_codes}"),
            "webhook": {
                "type": "object",
                "description": "when send_webhook was asked: the delivery outcome",
                "properties": {
                    "event_id": {"type": "string"},
                    "delivered": {"type": "boolean"},
                    "status_code": {"type": "integer"},
                    "attempts": {"type": "integer", "minimum": 1},
                    "error": {"type": "string"},
                },
            },
            "purged": {"type": "boolean", "description": "DELETE only: record and data removed"},
            "nhost_result": {
                "type": "object",
                "description": "when send_to_nhost was asked",
                "properties": {
                    "status": {"enum": ["stored", "failed", "skipped"]},
                    "document_id": nullable("string"),
                    "chunks_written": {"type": "integer", "minimum": 0},
                    "error_code": nullable("string"),
                    "error": nullable("string"),
                },
            },
        },
    }


def upload_form() -> dict:
    """Return the multipart form of the extract routes."""
    flag = {"type": "boolean", "default": False}
    return {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "the PDF"},
            "extract_type": {"enum": list(EXTRACT_TYPES), "default": "all"},
            "pages": {
                "type": "string",
                "description": "1-based pages and ranges, e.g. 1,3,5-9 (default: all)",
            },
            "include_tables": {**flag, "description": "tables are slow: off by default"},
            "chunk_size": {
                "type": "integer",
                "minimum": MIN_CHUNK_SIZE,
                "maximum": MAX_CHUNK_SIZE,
                "default": 1500,
            },
            "chunk_overlap": {
                "type": "integer",
                "minimum": 0,
                "description": "at most chunk_size / 2 (default 400)",
            },
            "password": {"type": "string", "description": "for encrypted PDFs; never stored"},
            "filename": {"type": "string", "description": "overrides the upload's name"},
            "user_id": {"type": "string"},
            "upload_device": {"type": "string"},
            "send_to_nhost": flag,
            "send_webhook": flag,
            "webhook_url": {
                "type": "string",
                "description": "public http(s) URL POSTed the final state (default WEBHOOK_URL)",
            },
        },
    }


def schemas() -> dict:
    """Return every component schema."""
    return {
        "Error": error_schema(),
        "Metadata": metadata_schema(),
        "ExtractionData": data_schema(),
        "Job": job_schema(),
        "UploadForm": upload_form(),
        "Accepted": {
            "type": "object",
            "required": ["success", "job_id", "status", "message", "status_url"],
            "properties": {
                "success": {"const": True},
                "job_id": {"type": "string"},
                "status": {
                    "enum": [s.value for s in JobStatus],
                    "description": "queued, or the state of the job an Idempotency-Key names",
                },
                "message": {"type": "string"},
                "status_url": {"type": "string"},
                "expires_at": nullable("string"),
            },
        },
        "SyncResult": {
            "type": "object",
            "required": ["success", "job_id", "filename", "data"],
            "properties": {
                "success": {"const": True},
                "job_id": {"type": "string"},
                "filename": nullable("string"),
                "data": ref("ExtractionData"),
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "service", "redis", "job_store"],
            "properties": {
                "status": {"enum": ["healthy", "degraded"]},
                "service": {"const": TITLE},
                "redis": {"enum": ["connected", "disconnected", "not_configured"]},
                "job_store": {"enum": ["redis", "memory"]},
                "nhost": {"enum": ["configured", "not_configured", "unreachable"]},
            },
        },
        "Ready": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"const": "ready"},
                "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "NotReady": {
            "allOf": [ref("Error")],
            "required": ["failing", "checks"],
            "properties": {
                "error_code": {"const": "not_ready"},
                "failing": {"type": "array", "items": {"type": "string"}},
                "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "Index": {
            "type": "object",
            "required": ["service", "routes"],
            "properties": {
                "service": {"const": TITLE},
                "routes": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    }


def upload_operation(summary: str, success: dict, extra: dict | None = None) -> dict:
    """Return a POST operation taking the multipart upload form."""
    responses = {
        **success,
        "400": error("a form field or the file is invalid (missing_file, invalid_file_type, ...)"),
        "413": error("file_too_large: over MAX_UPLOAD_MB"),
        **(extra or {}),
        **caller_errors(),
        "503": {
            **error("job_store_unavailable, antivirus_unavailable, or busy (shutting down)"),
            "headers": RETRY_AFTER,
        },
        "default": error("any other failure, with the same body shape"),
    }
    return {
        "summary": summary,
        "security": CALLER_SECURITY,
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": ref("UploadForm")}},
        },
        "responses": responses,
    }


def sync_operation(kind: str | None) -> dict:
    """Return the synchronous extract operation (optionally forced to one extract_type)."""
    summary = "Extract and wait" + (f" ({kind} only)" if kind else "")
    return upload_operation(
        summary,
        {"200": json_response("the extraction result", "SyncResult")},
        {
            "422": error("the job failed; error_code says why, job_id is included"),
            "504": error("sync_timeout: still running; poll status_url"),
        },
    )


def get_operation(summary: str, responses: dict, **extra: Any) -> dict:
    """Return a GET operation."""
    return {"summary": summary, "responses": responses, **extra}


def paths() -> dict:
    """Return every route of api.py."""
    job_param = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    wait_param = {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": "long-poll: answer when the job ends, or after this many seconds "
        "(capped at JOB_WAIT_MAX_S; answered at once when the worker's wait slots are taken)",
        "schema": {"type": "number", "minimum": 0},
    }
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "/extract/async": {
            "post": {
                **upload_operation(
                    "Queue an extraction; answer 202 with the job id",
                    {
                        "202": json_response(
                            "queued",
                            "Accepted",
                            {"Location": {"schema": {"type": "string"}}, **REQUEST_ID},
                        )
                    },
                    {"409": error("idempotency_conflict: the key was used with another file")},
                ),
                "parameters": [IDEMPOTENCY_KEY],
            }
        },
        "/job/{job_id}": {
            "get": get_operation(
                "Poll a job: status, progress, and data once completed",
                {
                    "200": json_response("the job", "Job"),
                    "400": error("invalid_field: wait is not a number of seconds"),
                    "404": error("job_not_found (also when the job belongs to another caller)"),
                    "410": error("job_expired: it existed, its TTL ran out"),
                    **caller_errors(),
                    "503": {**error("job_store_unavailable"), "headers": RETRY_AFTER},
                    "default": error("any other failure"),
                },
                parameters=[job_param, wait_param],
                security=CALLER_SECURITY,
            ),
            "delete": {
                "summary": "Cancel a queued/running job, or purge a finished one",
                "responses": {
                    "200": json_response("the job's final state, with purged", "Job"),
                    "404": error("job_not_found (also when the job belongs to another caller)"),
                    "410": error("job_expired"),
                    **caller_errors(),
                    "503": {**error("job_store_unavailable"), "headers": RETRY_AFTER},
                    "default": error("any other failure"),
                },
                "parameters": [job_param],
                "security": CALLER_SECURITY,
            },
        },
        "/extract": {"post": sync_operation(None)},
        **{
            f"/extract/{kind}": {"post": sync_operation(kind)}
            for kind in ("text", "metadata", "tables")
        },
        "/health": {"get": get_operation("Liveness", {"200": json_response("alive", "Health")})},
        "/ready": {
            "get": get_operation(
                "Readiness: job store, and ClamAV and Nhost when configured",
                {
                    "200": json_response("ready", "Ready"),
                    "503": {**json_response("not ready", "NotReady"), "headers": RETRY_AFTER},
                },
            )
        },
        "/metrics": {
            "get": get_operation(
                "Prometheus metrics of every worker",
                {
                    "200": {"description": "Prometheus text format", "content": text},
                    "401": error("METRICS_TOKEN is set and the Bearer token is missing or wrong"),
                },
                security=[{"metricsToken": []}, {}],
            )
        },
        "/": {
            "get": get_operation(
                "List the routes",
                {"200": json_response("routes", "Index"), **caller_errors()},
                security=CALLER_SECURITY,
            )
        },
        "/openapi.json": {
            "get": get_operation(
                "This document",
                {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
            )
        },
        "/docs": {
            "get": get_operation(
                "API documentation page",
                {
                    "200": {
                        "description": "HTML",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
    }


@cache
def document() -> dict:
    """Return the OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Upload a PDF, get a job, poll it to page text, metadata and chunks.",
        },
        "servers": [{"url": "/"}],
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "nhostToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "an end user's Nhost access token (needs NHOST_JWT_SECRET)",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "METRICS_TOKEN (only /metrics reads it)",
                },
            },
        },
    }


@cache
def docs_html() -> str:
    """Return a self-contained HTML page: each route, its responses, and the full document."""
    spec = document()
    rows = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = ", ".join(operation["responses"])
            rows.append(
                f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td>"
                f"<td>{html.escape(operation['summary'])}</td><td>{codes}</td></tr>"
            )
    body = html.escape(json.dumps(spec, indent=2))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{TITLE}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "td,th{padding:4px 10px;text-align:left;border-bottom:1px solid #ddd}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>"
        f"<h1>{TITLE} {VERSION}</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>."
        " Errors always have the body <code>{success: false, error, error_code}</code>.</p>"
        "<table><tr><th>route</th><th>what</th><th>responses</th></tr>"
        + "".join(rows)
        + f"</table><h2>OpenAPI document</h2><pre>{body}</pre></body></html>"
    )
