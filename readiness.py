"""Readiness: which dependencies of this instance answer, named so a 503 can say which fails."""

from __future__ import annotations

from antivirus import Antivirus, AntivirusUnavailable
from config import Settings

READY_STATES = ("ok", "not_configured")


def readiness_checks(settings: Settings, redis_state: str, nhost_state: str) -> dict[str, str]:
    """Return each dependency's state: ok, not_configured, or what is wrong."""
    store = {"connected": "ok", "not_configured": "ok"}.get(redis_state, f"redis_{redis_state}")
    return {
        "job_store": store,
        "clamav": clamav_state(settings),
        "nhost": "ok" if nhost_state == "configured" else nhost_state,
    }


def failing(checks: dict[str, str]) -> list[str]:
    """Return the names of the checks that are not ready."""
    return [name for name, state in checks.items() if state not in READY_STATES]


def clamav_state(settings: Settings) -> str:
    """Return ok, not_configured or unreachable for clamd."""
    scanner = Antivirus(settings)
    if not scanner.configured:
        return "not_configured"
    try:
        scanner.version()
    except AntivirusUnavailable:
        return "unreachable"
    return "ok"
