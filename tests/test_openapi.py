"""The OpenAPI document matches the routes, and schemathesis finds no 5xx or off-schema answer.

schemathesis runs against real gunicorn (2 workers, real Redis) through a requests session
that refuses every address but the test server's loopback port.
"""

from __future__ import annotations

import collections
import re
import time
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from requests.adapters import BaseAdapter, HTTPAdapter
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import openapi
from api import create_app
from config import load_settings
from tests.servers import GunicornServer

pytestmark = pytest.mark.e2e

TOKEN = "openapi-test-token"
API_KEY = "openapi-test-api-key"
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CALLS: collections.Counter = collections.Counter()
STATUSES: collections.Counter = collections.Counter()


class RefuseAdapter(BaseAdapter):
    """A transport that refuses to send anything (every non-test address lands here)."""

    def send(self, request, **kwargs):
        raise AssertionError(f"schemathesis tried to reach {request.url}")

    def close(self) -> None:
        """Nothing to release."""


def loopback_session(base_url: str) -> requests.Session:
    """Return a session that can only talk to the test server."""
    assert urlsplit(base_url).hostname == "127.0.0.1"
    session = requests.Session()
    session.mount("http://", RefuseAdapter())
    session.mount("https://", RefuseAdapter())
    session.mount(base_url + "/", HTTPAdapter())
    return session


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory):
    """gunicorn with 2 workers on the real Redis; /metrics behind a token."""
    tmp = tmp_path_factory.mktemp("openapi")
    env = {
        "REDIS_URL": redis_url,
        "RATELIMIT_ENABLED": "false",
        "REDIS_KEY_PREFIX": f"pdfx-openapi-{int(time.time() * 1000)}",
        "UPLOAD_DIR": str(tmp),
        "METRICS_TOKEN": TOKEN,
        "API_KEYS": API_KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
        "SYNC_TIMEOUT_S": "30",
    }
    with GunicornServer(env, tmp / "gunicorn.log", workers=2) as running:
        running.session = loopback_session(running.url)
        yield running


@pytest.fixture(scope="module")
def api_schema(server):
    """The schema as the running server serves it."""
    document = server.session.get(f"{server.url}/openapi.json", timeout=10).json()
    return schemathesis.openapi.from_dict(document)


def operations() -> list[tuple[str, str]]:
    """Return (method, path) of every documented operation."""
    paths = openapi.document()["paths"]
    return [(method, path) for path, item in paths.items() for method in item]


# schemathesis's own pytest loader does not run under pytest 9, so each operation's strategy
# is driven with hypothesis directly, which is what that loader does.
@pytest.mark.parametrize(("method", "path"), operations())
def test_server_keeps_to_its_schema(api_schema, server, method, path):
    """Every generated request gets an answer the schema allows, and never a 5xx."""
    operation = api_schema[path][method.upper()]
    headers = {"X-API-Key": API_KEY}
    if path == "/metrics":
        headers["Authorization"] = f"Bearer {TOKEN}"

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call_and_validate(
            base_url=server.url, session=server.session, headers=headers, checks=CHECKS
        )
        assert urlsplit(response.request.url).hostname == "127.0.0.1"
        CALLS[f"{method.upper()} {path}"] += 1
        STATUSES[response.status_code] += 1

    check()


def test_schemathesis_run_covered_every_operation():
    """The run above reached every documented operation (reported for the issue's note)."""
    operations = {
        f"{method.upper()} {path}"
        for path, item in openapi.document()["paths"].items()
        for method in item
    }
    print(f"\nschemathesis: {sum(CALLS.values())} calls, statuses {dict(STATUSES)}")
    assert set(CALLS) == operations
    assert all(STATUSES[code] == 0 for code in STATUSES if code >= 500)


def flask_paths() -> set[str]:
    """Return every routed path of the app, in OpenAPI's {param} form, shortcuts expanded."""
    app = create_app(load_settings(redis_url=None))
    paths = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if path == "/extract/{shortcut}":
            paths.update(f"/extract/{kind}" for kind in ("text", "metadata", "tables"))
        else:
            paths.add(path)
    return paths


class TestDocumentMatchesRoutes:
    """The document describes exactly the routes Flask serves, with their methods."""

    def test_same_paths(self):
        assert set(openapi.document()["paths"]) == flask_paths()

    def test_same_methods(self):
        app = create_app(load_settings(redis_url=None))
        documented = openapi.document()["paths"]
        served: dict[str, set[str]] = {}  # one path may have several rules (GET, DELETE)
        for rule in app.url_map.iter_rules():
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            if rule.endpoint == "static" or path not in documented:
                continue
            served.setdefault(path, set()).update(m.lower() for m in rule.methods)
        for path, methods in served.items():
            assert methods - {"head", "options"} == set(documented[path]), path

    def test_is_openapi_3_1_and_served(self):
        client = create_app(load_settings(redis_url=None)).test_client()
        body = client.get("/openapi.json").get_json()
        assert body["openapi"] == "3.1.0"
        assert body == openapi.document()

    def test_docs_page_is_self_contained(self):
        client = create_app(load_settings(redis_url=None)).test_client()
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.content_type.startswith("text/html")
        text = page.get_data(as_text=True)
        assert "/extract/async" in text and "/job/{job_id}" in text
        assert not re.search(r"""(src|href)=['"]?(https?:)?//""", text)
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
