"""The HTTP API: the app factory, the routes and the one error body shape.

``gunicorn api:app`` builds the app lazily on first access, so importing this module
does no work (tests call ``create_app(settings)`` with their own settings).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from config import Settings, load_settings
from errors import (
    ExtractorError,
    JobNotFound,
    MissingFile,
    ServiceUnavailable,
    SyncTimeout,
    extraction_error,
)
from jobs import JobManager
from jobstore import JobStatus, JobStore, open_job_store
from nhost_client import config_problems, nhost_status, resolve_nhost_identity
from validation import parse_options

log = logging.getLogger(__name__)

SERVICE_NAME = "PDF Extractor API"
FORM_OVERHEAD_BYTES = 1024 * 1024
PUBLIC_JOB_FIELDS = (
    "job_id",
    "status",
    "progress",
    "stage",
    "message",
    "pages_done",
    "pages_total",
    "filename",
    "created_at",
    "updated_at",
    "expires_at",
)
HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "file_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
NHOST_STATUS_CACHE_S = 30.0
SHORTCUT_TYPES = {"text": "text", "metadata": "metadata", "tables": "tables"}

bp = Blueprint("extractor", __name__)


@dataclass
class Services:
    """What the routes need, built once per app."""

    settings: Settings
    store: JobStore
    redis_state: str
    jobs: JobManager
    nhost_checked: tuple[float, str] = field(default=(float("-inf"), "not_configured"))

    def nhost_state(self) -> str:
        """Return Nhost's state, probed at most every NHOST_STATUS_CACHE_S seconds."""
        checked_at, state = self.nhost_checked
        if time.monotonic() - checked_at > NHOST_STATUS_CACHE_S:
            state = nhost_status(self.settings)
            self.nhost_checked = (time.monotonic(), state)
        return state


def services() -> Services:
    """Return the current app's services."""
    return current_app.extensions["pdfx"]


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app with its job store and job manager."""
    settings = settings or load_settings()
    logging.basicConfig(level=settings.log_level.upper())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.json.sort_keys = False
    store, redis_state = open_job_store(settings)
    for problem in config_problems(settings):
        log.warning("Nhost configuration: %s", problem)
    app.extensions["pdfx"] = Services(settings, store, redis_state, JobManager(settings, store))
    app.register_blueprint(bp)
    register_error_handlers(app)
    return app


def register_error_handlers(app: Flask) -> None:
    """Answer every failure with the same JSON body shape, never a stack trace."""
    app.register_error_handler(ExtractorError, error_response)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(Exception, unexpected_error_response)


def error_response(error: ExtractorError) -> Any:
    """Turn a service error into its JSON body and status."""
    response = jsonify(error.to_body())
    response.status_code = error.status
    if isinstance(error, ServiceUnavailable):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def http_error_response(error: HTTPException) -> Any:
    """Turn a werkzeug HTTP error (404, 405, 413...) into the same body shape."""
    status = error.code or 500
    code = HTTP_ERROR_CODES.get(status, f"http_{status}")
    message = error.description if status != 413 else "The upload is larger than allowed."
    response = jsonify({"success": False, "error": message, "error_code": code})
    response.status_code = status
    return response


def unexpected_error_response(error: Exception) -> Any:
    """Log an unexpected error and answer 500 without detail."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(ExtractorError())


def public_job(record: dict) -> dict:
    """Return the client's view of a job record (no internal fields)."""
    view = {name: record.get(name) for name in PUBLIC_JOB_FIELDS}
    if record["status"] == JobStatus.COMPLETED.value:
        view["data"] = record.get("data")
    if record["status"] == JobStatus.FAILED.value:
        view["error"] = record.get("error")
        view["error_code"] = record.get("error_code")
    if "nhost_result" in record:
        view["nhost_result"] = record["nhost_result"]
    return view


def submit_upload(forced_type: str | None = None) -> dict:
    """Validate the multipart request and queue its job."""
    svc = services()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise MissingFile()
    options = parse_options(request.form, upload.filename, svc.settings, forced_type)
    if options.send_to_nhost or options.user_id or bearer_token():
        identity = resolve_nhost_identity(
            svc.settings, request.headers.get("X-API-Key"), bearer_token(), options.user_id
        )
        options = dataclasses.replace(options, nhost_identity=identity)
    return svc.jobs.submit(upload.stream, options)


def bearer_token() -> str | None:
    """Return the end user's Nhost access token from `Authorization: Bearer`, if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


@bp.post("/extract/async")
def extract_async() -> Any:
    """Queue an extraction and answer 202 with the job id at once."""
    job = submit_upload()
    status_url = f"/job/{job['job_id']}"
    body = {
        "success": True,
        "job_id": job["job_id"],
        "status": job["status"],
        "message": "Upload accepted; poll status_url for progress.",
        "status_url": status_url,
    }
    return jsonify(body), 202, {"Location": status_url}


@bp.get("/job/<job_id>")
def job_status(job_id: str) -> Any:
    """Return a job's state, with its data once completed."""
    record = services().store.get(job_id)
    if record is None:
        raise JobNotFound()
    return jsonify(public_job(record))


@bp.post("/extract")
def extract_sync() -> Any:
    """Run an extraction and wait for it (bounded by SYNC_TIMEOUT_S)."""
    return run_sync(None)


@bp.post("/extract/<shortcut>")
def extract_shortcut(shortcut: str) -> Any:
    """Run a synchronous extraction of one kind: text, metadata or tables."""
    if shortcut not in SHORTCUT_TYPES:
        raise JobNotFound("No such route.")
    return run_sync(SHORTCUT_TYPES[shortcut])


def run_sync(forced_type: str | None) -> Any:
    """Submit, wait up to the sync timeout, and answer with the data or the failure."""
    svc = services()
    job = submit_upload(forced_type)
    job_id = job["job_id"]
    if not svc.jobs.wait(job_id, svc.settings.sync_timeout_s):
        raise SyncTimeout(job_id=job_id, status_url=f"/job/{job_id}")
    record = svc.store.get(job_id)
    if record is None:
        raise JobNotFound()
    if record["status"] == JobStatus.FAILED.value:
        error = extraction_error(record["error_code"], record.get("error"))
        error.details = {"job_id": job_id}
        raise error
    return jsonify(
        {
            "success": True,
            "job_id": job_id,
            "filename": record.get("filename"),
            "data": record.get("data"),
        }
    )


@bp.get("/health")
def health() -> Any:
    """Report liveness and the job store's state (always 200 for the platform)."""
    svc = services()
    redis = redis_status(svc)
    status = "healthy" if redis in ("connected", "not_configured") else "degraded"
    body = {"status": status, "service": SERVICE_NAME, "redis": redis, "job_store": svc.store.kind}
    body["nhost"] = svc.nhost_state()
    return jsonify(body)


def redis_status(svc: Services) -> str:
    """Return connected, disconnected or not_configured."""
    if svc.store.kind != "redis":
        return svc.redis_state
    return "connected" if svc.store.ping() else "disconnected"


@bp.get("/")
def index() -> Any:
    """List the routes."""
    return jsonify(
        {
            "service": SERVICE_NAME,
            "routes": {
                "POST /extract/async": "upload a PDF (multipart 'file'); 202 + job_id",
                "GET /job/<job_id>": "poll a job: status, progress, and data when completed",
                "POST /extract": "extract and wait for the result",
                "POST /extract/text": "extract text and chunks and wait",
                "POST /extract/metadata": "extract metadata and wait",
                "POST /extract/tables": "extract tables (and text) and wait",
                "GET /health": "liveness and job store state",
            },
        }
    )


def __getattr__(name: str) -> Any:
    # PEP 562: `gunicorn api:app` gets the app built on first access, not at import.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
