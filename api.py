"""The HTTP API: the app factory, the routes, who may call them, and the one error body shape.

Protections wired here: API keys (``X-API-Key``, constant-time compare; a job is visible only
to the key that created it), flask-limiter on Redis (in-memory fallback when Redis is down),
``ProxyFix`` for ``TRUSTED_PROXIES``, security headers on every response, and CORS only for
``CORS_ORIGINS``.

``gunicorn api:app`` builds the app lazily on first access, so importing this module
does no work (tests call ``create_app(settings)`` with their own settings).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import logging
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, g, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

import logs
import metrics
import openapi
import readiness
from config import Settings, load_settings, split_list
from errors import (
    AuthError,
    ExtractorError,
    InvalidField,
    JobExpired,
    JobNotFound,
    MissingFile,
    NotReady,
    ServiceUnavailable,
    SyncTimeout,
    extraction_error,
)
from jobmanager import JobManager
from jobstore import TERMINAL, EncodedJob, JobStatus, JobStore, open_job_store
from nhost_auth import resolve_nhost_identity, verify_nhost_token
from nhost_client import config_problems, nhost_status
from uploads import UploadFile
from validation import parse_options, parse_wait
from webhooks import check_url

log = logging.getLogger(__name__)

SERVICE_NAME = "PDF Extractor API"
FORM_OVERHEAD_BYTES = 1024 * 1024
# Bodies larger than this are read from the server in 1 MB pieces (see LargeBodyReads).
LARGE_BODY_BYTES = 64 * 1024
BODY_READ_BYTES = 1024 * 1024
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
API_KEY_HEADER = "X-API-Key"
# Probes, Prometheus (its own METRICS_TOKEN) and the API description need no API key.
OPEN_ENDPOINTS = frozenset(
    {
        "extractor.health",
        "extractor.ready",
        "extractor.metrics_route",
        "extractor.openapi_document",
        "extractor.docs_page",
    }
)
EXTRACT_ENDPOINTS = (
    "extractor.extract_async", "extractor.extract_sync", "extractor.extract_shortcut",
)  # fmt: skip
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
CORS_ALLOW_HEADERS = "X-API-Key, Authorization, Content-Type"
CORS_EXPOSE_HEADERS = "Location, Retry-After"
CORS_MAX_AGE_S = "600"
DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
# Polled by platforms every few seconds: their successful answers are logged at DEBUG.
QUIET_ROUTES = ("/health", "/ready", "/metrics")
MAX_IDEMPOTENCY_KEY = 255

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

    api_keys: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)
    limiter: Limiter | None = None  # held here: flask-limiter keeps only a weak reference


def services() -> Services:
    """Return the current app's services."""
    return current_app.extensions["pdfx"]


class _BodyAsRaw(io.RawIOBase):
    """The server's request body as a raw stream, for ``io.BufferedReader``."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        """Tell io that this stream can be read."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` with the next piece of the body; 0 at its end."""
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class LargeBodyReads:
    """WSGI middleware: a large body is read from the server 1 MB at a time.

    Werkzeug's multipart parser asks for 64 KB at a time, and gunicorn copies what it has
    buffered (up to 1 MB) on every such read: a 3.8 MB upload cost the worker 26 ms of CPU,
    18 ms through a 1 MB buffer (BENCHMARKS.md). The parser then reads from the buffer.
    """

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        """Serve the request, its body buffered when it is large."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # werkzeug answers a malformed length itself
        if length > LARGE_BODY_BYTES:
            body = _BodyAsRaw(environ["wsgi.input"])
            environ["wsgi.input"] = io.BufferedReader(body, BODY_READ_BYTES)
        return self.wsgi_app(environ, start_response)


class UploadRequest(Request):
    """Flask's request, writing each uploaded file where its job will keep it (``uploads``)."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> Any:
        directory = services().settings.upload_dir or tempfile.gettempdir()
        return UploadFile.create(directory) or super()._get_file_stream(
            total_content_length, content_type, filename, content_length
        )


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app with its job store and job manager."""
    settings = settings or load_settings()
    logs.configure_logging(settings)
    app = Flask(__name__)
    app.request_class = UploadRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.json.sort_keys = False
    app.wsgi_app = LargeBodyReads(app.wsgi_app)
    if settings.trusted_proxies:
        # Each trusted proxy appends one X-Forwarded-For hop; only those hops are believed.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)
    store, redis_state = open_job_store(settings)
    for problem in config_problems(settings):
        log.warning("Nhost configuration: %s", problem)
    app.extensions["pdfx"] = Services(
        settings,
        store,
        redis_state,
        JobManager(settings, store),
        api_keys=split_list(settings.api_keys),
        cors_origins=split_list(settings.cors_origins),
    )
    if not app.extensions["pdfx"].api_keys:
        log.warning("API_KEYS is not set: the API is open to anyone who can reach it")
    # First hooks: every request, even one refused by the rate limiter or authentication,
    # gets its id, its log line and its metrics (after_request hooks run in reverse).
    app.before_request(start_request)
    app.after_request(finish_request)
    app.teardown_request(lambda _exc: logs.clear())
    app.register_blueprint(bp)
    app.extensions["pdfx"].limiter = install_rate_limits(app, settings)
    app.before_request(authenticate)
    app.after_request(add_security_headers)
    app.after_request(add_cors_headers)
    register_error_handlers(app)
    return app


def install_rate_limits(app: Flask, settings: Settings) -> Limiter:
    """Limit the extract routes and polling per client address, counted in Redis."""
    storage = settings.ratelimit_storage_uri or settings.redis_url or "memory://"
    options: dict[str, Any] = {}
    if storage.startswith(("redis://", "rediss://", "unix://")):
        # Short timeouts: a dead Redis must switch us to the memory fallback, not hang.
        options = {
            "key_prefix": f"{settings.redis_key_prefix}:ratelimit",
            "socket_connect_timeout": 1,
            "socket_timeout": 1,
        }
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=storage,
        storage_options=options,
        strategy="fixed-window",
        headers_enabled=True,
        in_memory_fallback_enabled=True,
        enabled=settings.ratelimit_enabled,
    )
    if not settings.ratelimit_enabled:
        return limiter  # off: each view's wrapper would evaluate an empty list per request
    views = app.view_functions
    if settings.ratelimit_default:
        extract = limiter.shared_limit(settings.ratelimit_default, scope="extract")
        for endpoint in EXTRACT_ENDPOINTS:
            views[endpoint] = extract(views[endpoint])
    if settings.ratelimit_extract_async:
        async_route = "extractor.extract_async"
        views[async_route] = limiter.limit(settings.ratelimit_extract_async)(views[async_route])
    if settings.ratelimit_poll:
        poll = "extractor.job_status"
        views[poll] = limiter.limit(settings.ratelimit_poll)(views[poll])
    return limiter


def authenticate() -> None:
    """Identify the caller on every route but /health; set ``g.owner`` for job ownership.

    A valid ``X-API-Key`` makes the key the owner. Without one, an end user's Nhost token
    (``Authorization: Bearer``, when NHOST_JWT_SECRET is set) is a credential on its own and
    the user is the owner. With API_KEYS set, a caller with neither gets 401.
    """
    g.owner = None
    if request.method == "OPTIONS" or request.endpoint in OPEN_ENDPOINTS:
        return
    svc = services()
    key = matching_key(request.headers.get(API_KEY_HEADER, ""), svc.api_keys)
    if key is not None:
        g.owner = key_owner(key)
        return
    token = bearer_token()
    if token and svc.settings.nhost_jwt_secret:
        g.owner = "user:" + verify_nhost_token(svc.settings, token).lower()
        return
    if svc.api_keys:
        raise AuthError(f"A valid API key is required in the {API_KEY_HEADER} header.")


def matching_key(given: str, keys: list[str]) -> str | None:
    """Return the key equal to ``given``, comparing every key in constant time."""
    matched = None
    for key in keys:  # no early exit: the time does not tell which key (or prefix) matched
        if hmac.compare_digest(given.encode(), key.encode()):
            matched = key
    return matched


def key_owner(key: str) -> str:
    """Return the owner id stored on a key's jobs: a hash, never the key itself."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def add_security_headers(response: Any) -> Any:
    """Set the security headers on every response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def add_cors_headers(response: Any) -> Any:
    """Allow a listed browser origin (CORS is off unless CORS_ORIGINS is set)."""
    origins = services().cors_origins
    origin = request.headers.get("Origin")
    if not origins or not origin or ("*" not in origins and origin not in origins):
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers.add("Vary", "Origin")
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE_S
    return response


def start_request() -> None:
    """Take or make the request id and start the clock."""
    g.started = time.monotonic()
    g.request_id = logs.new_request_id(request.headers.get(logs.REQUEST_ID_HEADER))
    logs.bind(request_id=g.request_id)


def finish_request(response: Response) -> Response:
    """Echo the request id, count the request, log it, and log refusals as security events."""
    seconds = time.monotonic() - g.get("started", time.monotonic())
    route = request.url_rule.rule if request.url_rule else "unmatched"
    status = response.status_code
    response.headers[logs.REQUEST_ID_HEADER] = g.get("request_id") or logs.new_request_id()
    metrics.record_request(request.method, route, status, seconds)
    metrics.refresh_memory()
    level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
    fields = {"method": request.method, "route": route, "path": request.path, "status": status}
    logs.event(
        log,
        "request",
        level,
        **fields,
        duration_ms=round(seconds * 1000, 1),
        error_code=g.get("error_code"),
        remote_addr=request.remote_addr,
        job_id=(request.view_args or {}).get("job_id") or g.get("job_id"),
    )
    if 400 <= status < 500 and g.get("error_code"):
        metrics.record_rejected(g.error_code)
        log_refusal(route, status, g.error_code)
    return response


def log_refusal(route: str, status: int, error_code: str) -> None:
    """Log refused uploads, failed auth and rate limits as security events."""
    if status == 429:
        logs.security_event("rate_limited", route=route)
    elif status in (401, 403):
        logs.security_event("auth_failed", route=route, error_code=error_code)
    elif request.method == "POST" and route.startswith("/extract"):
        if error_code in logs.ORDINARY_OUTCOMES:
            return  # e.g. a scan without a text layer: the request line records it
        name = error_code if error_code in logs.NAMED_SECURITY_CODES else "upload_rejected"
        logs.security_event(name, route=route, error_code=error_code)


def register_error_handlers(app: Flask) -> None:
    """Answer every failure with the same JSON body shape, never a stack trace."""
    app.register_error_handler(ExtractorError, error_response)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(Exception, unexpected_error_response)


def error_response(error: ExtractorError) -> Any:
    """Turn a service error into its JSON body and status."""
    g.error_code = error.code
    response = jsonify(error.to_body())
    response.status_code = error.status
    if isinstance(error, ServiceUnavailable):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def http_error_response(error: HTTPException) -> Any:
    """Turn a werkzeug HTTP error (404, 405, 413...) into the same body shape."""
    status = error.code or 500
    code = HTTP_ERROR_CODES.get(status, f"http_{status}")
    g.error_code = code
    message = error.description
    if status == 413:
        message = "The upload is larger than allowed."
    elif status == 429:
        message = f"Too many requests: the limit is {error.description}. See Retry-After."
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
    if record.get("webhook"):
        view["webhook"] = record["webhook"]
    return view


def idempotency_key() -> str | None:
    """Return the request's Idempotency-Key header, checked (printable, at most 255 chars)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise InvalidField("Idempotency-Key must be 1-255 printable characters.")
    return key


def webhook_url(settings: Settings) -> str | None:
    """Return the form's webhook_url, refused early if it is not an allowed address."""
    url = request.form.get("webhook_url") or None
    if url is not None:
        check_url(url, settings.webhook_allow_private)
    return url


def submit_upload(forced_type: str | None = None) -> dict:
    """Validate the multipart request and queue its job."""
    svc = services()
    svc.jobs.check_capacity()  # before the body is read: a full worker stores nothing
    key = idempotency_key()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise MissingFile()
    options = parse_options(request.form, upload.filename, svc.settings, forced_type)
    token = bearer_token()
    if options.send_to_nhost or options.user_id or token:
        identity = resolve_nhost_identity(
            svc.settings, request.headers.get(API_KEY_HEADER), token, options.user_id
        )
        options = dataclasses.replace(options, nhost_identity=identity)
    url = webhook_url(svc.settings)
    job = svc.jobs.submit(
        upload.stream, options, owner=g.owner, idempotency_key=key, webhook_url=url
    )
    g.job_id = job["job_id"]
    logs.event(log, "job_submitted", job_id=g.job_id, upload_name=options.filename)
    return job


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
        "expires_at": job.get("expires_at"),
    }
    return jsonify(body), 202, {"Location": status_url}


@bp.get("/job/<job_id>")
def job_status(job_id: str) -> Any:
    """Return a job's state, with its data once completed; with ``?wait=S``, first wait
    up to S seconds for a running job to end (a long-poll)."""
    wait_s = parse_wait(request.args, services().settings.job_wait_max_s)
    job = owned_encoded_job(job_id)
    running = JobStatus(job.record["status"]) not in TERMINAL
    if wait_s and running and services().jobs.wait_ended(job_id, wait_s):
        job = owned_encoded_job(job_id)
    return json_with_data(public_job(job.record), job.data_json)


def owned_job(job_id: str) -> dict:
    """Return the caller's job; another caller's job is 404, as if it did not exist."""
    return check_owner(job_id, services().store.get(job_id))


def owned_encoded_job(job_id: str) -> EncodedJob:
    """Return the caller's job with its result still as stored JSON; the checks of owned_job."""
    job = services().store.get_encoded(job_id)
    check_owner(job_id, None if job is None else job.record)
    return job


def check_owner(job_id: str, record: dict | None) -> dict:
    """Return the record if the caller owns it; 410 if it expired, else 404."""
    if record is None and services().store.was_expired(job_id, g.owner):
        raise JobExpired()
    if record is None or record.get("owner") != g.owner:
        raise JobNotFound()
    return record


def json_with_data(body: dict, data_json: bytes | None) -> Response:
    """Answer ``body`` as JSON, its ``data`` member taken verbatim from the stored JSON bytes.

    Decoding a stored result only to encode it again took ~10 ms per 1.7 MB, per request.
    """
    if data_json is None or "data" not in body:
        return jsonify(body)
    names = list(body)
    at = names.index("data")
    head = members_json({name: body[name] for name in names[:at]})
    tail = members_json({name: body[name] for name in names[at + 1 :]})
    pieces = (b"{", head, b"," if head else b"", b'"data":', data_json)
    pieces += (b"," if tail else b"", tail, b"}\n")
    # One join: the result is copied once, in the key order jsonify would give.
    return current_app.response_class(b"".join(pieces), mimetype=current_app.json.mimetype)


def members_json(members: dict) -> bytes:
    """Return the members of a JSON object without its braces (b"" when there are none)."""
    return current_app.json.dumps(members, separators=(",", ":"))[1:-1].encode()


@bp.delete("/job/<job_id>")
def job_cancel(job_id: str) -> Any:
    """Cancel a queued or running job, or purge a finished one; answer its final state."""
    record, purged = services().jobs.cancel(job_id, g.owner)
    return jsonify({**public_job(record), "purged": purged})


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
    record, data_json = owned_encoded_job(job_id)
    if record["status"] == JobStatus.FAILED.value:
        error = extraction_error(record["error_code"], record.get("error"))
        error.details = {"job_id": job_id}
        raise error
    body = {"success": True, "job_id": job_id, "filename": record.get("filename"), "data": None}
    return json_with_data(body, data_json)


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
    """Return connected, disconnected or not_configured (and set the Redis gauge)."""
    state = svc.redis_state if svc.store.kind != "redis" else None
    if state is None:
        state = "connected" if svc.store.ping() else "disconnected"
    metrics.record_redis_up(None if state == "not_configured" else state == "connected")
    return state


@bp.get("/ready")
def ready() -> Any:
    """Report readiness: the job store, and ClamAV and Nhost when configured; 503 names failures."""
    svc = services()
    checks = readiness.readiness_checks(svc.settings, redis_status(svc), svc.nhost_state())
    failing = readiness.failing(checks)
    if failing:
        raise NotReady(f"Not ready: {', '.join(failing)}.", failing=failing, checks=checks)
    return jsonify({"status": "ready", "checks": checks})


@bp.get("/metrics")
def metrics_route() -> Any:
    """Serve Prometheus metrics of every worker; METRICS_TOKEN, when set, is required."""
    svc = services()
    check_metrics_token(svc.settings)
    redis_status(svc)
    return Response(metrics.render(), content_type=metrics.CONTENT_TYPE)


def check_metrics_token(settings: Settings) -> None:
    """Require `Authorization: Bearer <METRICS_TOKEN>` when a token is configured."""
    if not settings.metrics_token:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.metrics_token.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise AuthError("A valid metrics token is required (Authorization: Bearer <token>).")


@bp.get("/openapi.json")
def openapi_document() -> Any:
    """Serve the OpenAPI 3.1 description of this API."""
    return jsonify(openapi.document())


@bp.get("/docs")
def docs_page() -> Any:
    """Serve a self-contained HTML page describing the API (no external assets)."""
    response = Response(openapi.docs_html(), content_type="text/html; charset=utf-8")
    # The page's one inline style sheet; everything else stays as strict as the API's.
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


@bp.get("/")
def index() -> Any:
    """List the routes."""
    return jsonify(
        {
            "service": SERVICE_NAME,
            "routes": {
                "POST /extract/async": "upload a PDF (multipart 'file'); 202 + job_id",
                "GET /job/<job_id>": "poll a job: status, progress, and data when completed",
                "DELETE /job/<job_id>": "cancel a queued/running job, or purge a finished one",
                "POST /extract": "extract and wait for the result",
                "POST /extract/text": "extract text and chunks and wait",
                "POST /extract/metadata": "extract metadata and wait",
                "POST /extract/tables": "extract tables (and text) and wait",
                "GET /health": "liveness and job store state",
                "GET /ready": "readiness: job store, and ClamAV and Nhost when configured",
                "GET /metrics": "Prometheus metrics (Bearer METRICS_TOKEN when set)",
                "GET /openapi.json": "the OpenAPI 3.1 description",
                "GET /docs": "API documentation page",
            },
        }
    )


def __getattr__(name: str) -> Any:
    # PEP 562: `gunicorn api:app` gets the app built on first access, not at import.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
