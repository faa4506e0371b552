"""Rate limits: shared by gunicorn workers through real Redis, per client address, with
an in-memory fallback when Redis is down; polling and /health stay usable."""

from __future__ import annotations

import io
import re
import uuid

import pdf_factory
import pytest
import requests
from servers import GunicornServer, RedisServer
from test_api import make_settings
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from api import create_app

JOB = "/job/" + "0" * 32  # unknown job: 404, but the limit is counted first


def post_plain(client, environ=None):
    values = {"file": FileStorage(io.BytesIO(pdf_factory.plain()), "doc.pdf")}
    boundary, body = encode_multipart(values)
    return client.post(
        "/extract/async",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        environ_base=environ or {},
    )


@pytest.fixture
def make_client(tmp_path):
    apps = []

    def build(**overrides):
        overrides.setdefault("ratelimit_enabled", True)
        app = create_app(make_settings(tmp_path, **overrides))
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        app.extensions["pdfx"].jobs.shutdown()


@pytest.mark.e2e
class TestSharedAcrossWorkers:
    """Two gunicorn workers, one Redis: the counts are shared."""

    @pytest.fixture
    def server(self, tmp_path, redis_url, redis_prefix):
        env = {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": redis_prefix,
            "UPLOAD_DIR": str(tmp_path),
            "RATELIMIT_DEFAULT": "100 per hour;10 per minute",
            "RATELIMIT_EXTRACT_ASYNC": "5 per minute",
            "RATELIMIT_POLL": "120 per minute",
        }
        with GunicornServer(env, tmp_path / "gunicorn.log", workers=2) as running:
            yield running

    def test_limits_are_shared_and_polling_is_separate(self, server):
        sessions = sessions_on_two_workers(server)
        statuses, job_ids = [], []
        for i in range(12):  # alternating between the two workers' connections
            response = sessions[i % 2].post(
                f"{server.url}/extract/async",
                files={"file": ("doc.pdf", pdf_factory.plain(), "application/pdf")},
                timeout=30,
            )
            statuses.append(response.status_code)
            if response.status_code == 202:
                job_ids.append(response.json()["job_id"])
            else:
                assert response.json()["error_code"] == "rate_limited"
                assert 0 < int(response.headers["Retry-After"]) <= 60
        # Per-worker memory counts would let up to 10 through; Redis lets exactly 5.
        assert statuses == [202] * 5 + [429] * 7
        served = re.findall(r'<(\d+)> "POST /extract/async HTTP/1.1" 202', server.log())
        assert len(set(served)) == 2, "both workers must have accepted uploads"
        # The extract limits are spent; polling (every 2 s would be 30/min) still answers,
        # even at twice that rate.
        for i in range(60):
            poll = requests.get(f"{server.url}/job/{job_ids[i % 5]}", timeout=10)
            assert poll.status_code == 200, poll.text
        # /health is never limited.
        for _ in range(130):
            assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
        # No version in the Server header; JSON with nosniff from gunicorn too.
        health = requests.get(f"{server.url}/health", timeout=10)
        assert not re.search(r"\d", health.headers.get("Server", ""))
        assert health.headers["X-Content-Type-Options"] == "nosniff"
        for session in sessions:
            session.close()


def sessions_on_two_workers(server, tries: int = 40) -> list[requests.Session]:
    """Return two keep-alive sessions whose connections are held by different workers."""
    by_pid: dict[str, requests.Session] = {}
    for i in range(tries):
        session = requests.Session()
        session.get(f"{server.url}/health?probe={i}", timeout=10)
        found = re.search(rf'<(\d+)> "GET /health\?probe={i} ', server.log())
        if found and found.group(1) not in by_pid:
            by_pid[found.group(1)] = session
        else:
            session.close()
        if len(by_pid) == 2:
            return list(by_pid.values())
    raise AssertionError("could not reach both gunicorn workers")


class TestPerRoute:
    """Which route spends which bucket."""

    def test_shared_extract_bucket(self, make_client):
        client = make_client(ratelimit_default="3 per minute", ratelimit_extract_async="")
        statuses = [post_plain(client).status_code for _ in range(3)]
        sync = client.post("/extract", data={})  # a different extract route, same bucket
        assert statuses == [202] * 3 and sync.status_code == 429
        assert sync.get_json()["error_code"] == "rate_limited" and "Retry-After" in sync.headers

    def test_poll_limit(self, make_client):
        client = make_client(ratelimit_poll="4 per minute")
        assert [client.get(JOB).status_code for _ in range(5)] == [404] * 4 + [429]

    def test_disabled(self, make_client):
        client = make_client(ratelimit_enabled=False, ratelimit_poll="1 per minute")
        assert [client.get(JOB).status_code for _ in range(3)] == [404] * 3


class TestClientAddress:
    """TRUSTED_PROXIES decides whether X-Forwarded-For names the client."""

    PROXY = {"REMOTE_ADDR": "10.0.0.1"}

    def _get(self, client, forwarded):
        return client.get(JOB, headers={"X-Forwarded-For": forwarded}, environ_base=self.PROXY)

    def test_no_trusted_proxy_means_one_bucket(self, make_client):
        client = make_client(ratelimit_poll="2 per minute", trusted_proxies=0)
        codes = [self._get(client, ip).status_code for ip in ("1.1.1.1", "2.2.2.2", "3.3.3.3")]
        assert codes == [404, 404, 429]  # everyone behind the proxy shares its address

    def test_one_trusted_proxy_separates_clients(self, make_client):
        client = make_client(ratelimit_poll="2 per minute", trusted_proxies=1)
        assert [self._get(client, "1.1.1.1").status_code for _ in range(2)] == [404, 404]
        assert [self._get(client, "2.2.2.2").status_code for _ in range(2)] == [404, 404]
        assert self._get(client, "1.1.1.1").status_code == 429
        # A client forging an extra hop: the proxy appends the real address last, and only
        # that last hop is trusted, so the forged one does not open a fresh bucket.
        assert self._get(client, "9.9.9.9, 1.1.1.1").status_code == 429


class TestRedisDown:
    """When the limiter's Redis dies, limits fall back to memory instead of failing requests."""

    def test_fallback_to_memory(self, make_client, tmp_path):
        redis_server = RedisServer(tmp_path).start()
        try:
            client = make_client(
                ratelimit_storage_uri=redis_server.url,
                redis_key_prefix=f"rl-{uuid.uuid4().hex[:8]}",
                ratelimit_poll="3 per minute",
            )
            assert client.get(JOB).status_code == 404  # counted in Redis
        finally:
            redis_server.stop()
        codes = [client.get(JOB).status_code for _ in range(4)]
        assert 500 not in codes
        assert codes[-1] == 429  # still limited, now per worker in memory
        assert post_plain(client).status_code == 202
