"""Typed settings, read once from the environment (and a local ``.env``)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    """Every knob of the service; each one is an environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Job store. Unset REDIS_URL = in-memory store (one gunicorn worker only).
    redis_url: str | None = None
    redis_key_prefix: str = Field("pdfx", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    redis_job_ttl: int = Field(86400, ge=60, description="seconds a queued/processing job lives")
    redis_completed_ttl: int = Field(3600, ge=60, description="seconds a completed job lives")
    redis_failed_ttl: int = Field(86400, ge=60, description="seconds a failed job lives")

    # Uploads and limits.
    max_upload_mb: int = Field(200, ge=1)
    max_pages: int = Field(10000, ge=1)
    upload_dir: str | None = None  # parent of per-job temp dirs; default: the system temp dir

    # Work.
    extract_workers: int = Field(2, ge=1, le=32)
    sync_timeout_s: float = Field(120.0, gt=0)
    job_wait_max_s: float = Field(30.0, ge=0, le=100, description="longest GET /job?wait=")
    job_wait_slots: int = Field(4, ge=0, le=64, description="long-polls per worker at once")
    default_chunk_size: int = Field(1500, ge=100, le=2000)
    default_chunk_overlap: int = Field(400, ge=0, le=1000)

    # Parser isolation: limits of each parse child and the parent's two clocks.
    extract_memory_mb: int = Field(1536, ge=0, description="child address space; 0 = none")
    extract_cpu_s: int = Field(900, ge=0, description="child CPU seconds; 0 = none")
    extract_open_files: int = Field(64, ge=16, le=4096)
    extract_open_timeout_s: float = Field(60.0, gt=0, description="until the page count is known")
    extract_timeout_s: float | None = Field(None, gt=0, description="fixed total; unset = scaled")
    extract_timeout_per_page_s: float = Field(1.0, gt=0)
    extract_timeout_floor_s: float = Field(60.0, gt=0)
    extract_timeout_ceiling_s: float = Field(600.0, gt=0)
    extract_stall_s: float = Field(30.0, gt=0, description="longest wait for the next page")
    extract_fork_server: bool = Field(True, description="fork children from a warm zygote")
    extract_split_min_pages: int = Field(32, ge=0, description="read in 2 processes; 0 = never")

    # Operations: logs and metrics.
    log_level: str = Field("INFO", pattern=r"(?i)^(debug|info|warning|error|critical)$")
    log_format: Literal["json", "text"] = "json"
    metrics_token: str | None = None  # unset = /metrics is open
    prometheus_multiproc_dir: str | None = None  # gunicorn makes one in the temp dir when unset

    # Job lifecycle: leases, recovery, backpressure, idempotency, webhooks.
    max_attempts: int = Field(2, ge=1, le=10, description="runs of a job before worker_lost")
    lease_ttl_s: float = Field(15.0, ge=1, description="a lease lapses this long after a beat")
    heartbeat_s: float = Field(3.0, gt=0, description="how often the owner renews its leases")
    reaper_interval_s: float = Field(10.0, gt=0, description="how often a worker looks for orphans")
    queue_max: int = Field(8, ge=0, description="jobs waiting per worker beyond EXTRACT_WORKERS")
    store_retry_s: float = Field(120.0, ge=0, description="how long a final write waits for Redis")
    job_tombstone_ttl: int = Field(7 * 86400, ge=60, description="410 instead of 404 this long")
    dedupe: bool = False
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_allow_private: bool = False
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_retries: int = Field(5, ge=0, le=10)
    webhook_backoff_s: float = Field(0.5, ge=0)

    # Who may call (security issue). Comma-separated lists.
    api_keys: str = ""
    trusted_api_keys: str = ""
    allowed_upload_devices: str = "web,mobile,api"
    pdf_reject_features: str = ""
    dangerous_content: Literal["off", "flag", "reject"] = "flag"
    # Rate limits (flask-limiter syntax; ";" separates several). Storage: REDIS_URL.
    ratelimit_enabled: bool = True
    ratelimit_default: str = "100 per hour;10 per minute"
    ratelimit_extract_async: str = "5 per minute"
    ratelimit_poll: str = "120 per minute"
    ratelimit_storage_uri: str | None = None  # default: REDIS_URL, else memory://
    # Reverse proxies in front of the service (Railway: 1) whose X-Forwarded-For is trusted.
    trusted_proxies: int = Field(0, ge=0, le=5)
    cors_origins: str = ""  # comma-separated origins allowed to call from a browser; "*" = any

    # Antivirus (clamd). Unset socket and host = not configured.
    clamav_socket: str | None = None
    clamav_host: str | None = None
    clamav_port: int = 3310
    clamav_fail_mode: Literal["closed", "open"] = "closed"
    clamav_timeout_s: float = Field(30.0, gt=0)
    clamav_stream_max_mb: int = Field(25, ge=1)  # clamd.conf's StreamMaxLength

    # Nhost (Hasura GraphQL). No defaults for secrets.
    nhost_graphql_url: str | None = None
    nhost_subdomain: str | None = None
    nhost_region: str | None = None
    nhost_admin_secret: str | None = None
    nhost_jwt_secret: str | None = None
    nhost_documents_table: str = "documents"
    nhost_chunks_table: str = "document_chunks"
    nhost_batch_size: int = Field(100, ge=1, le=1000)
    nhost_timeout_s: float = Field(60.0, gt=0)

    @property
    def max_upload_bytes(self) -> int:
        """Return the upload cap in bytes."""
        return self.max_upload_mb * 1024 * 1024

    @property
    def nhost_url(self) -> str | None:
        """Return the Nhost GraphQL endpoint, built from subdomain and region when not given."""
        if self.nhost_graphql_url:
            return self.nhost_graphql_url
        if self.nhost_subdomain and self.nhost_region:
            return f"https://{self.nhost_subdomain}.graphql.{self.nhost_region}.nhost.run/v1"
        return None


def split_list(value: str) -> list[str]:
    """Split a comma-separated setting into its non-empty, stripped items."""
    return [item.strip() for item in value.split(",") if item.strip()]


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)
