"""/health stays a cheap liveness answer; /ready names the dependency that is failing."""

from __future__ import annotations

import pytest
from clamd_server import clamd  # noqa: F401 - a fixture
from hasura_server import JWT_SECRET_SETTING

from api import create_app
from config import Settings
from tests.servers import RedisServer, free_port


def client_for(tmp_path, **overrides):
    """Return a test client for an app built with these settings."""
    values = {"redis_url": None, "upload_dir": str(tmp_path), **overrides}
    app = create_app(Settings(**values))
    return app.test_client()


class TestReady:
    """Readiness checks the job store, and ClamAV and Nhost only when configured."""

    def test_memory_store_alone_is_ready(self, tmp_path):
        response = client_for(tmp_path).get("/ready")
        assert response.status_code == 200
        assert response.get_json() == {
            "status": "ready",
            "checks": {"job_store": "ok", "clamav": "not_configured", "nhost": "not_configured"},
        }

    def test_redis_stopping_makes_it_not_ready_but_still_alive(self, tmp_path):
        redis = RedisServer(tmp_path).start()
        try:
            client = client_for(tmp_path, redis_url=redis.url)
            assert client.get("/ready").status_code == 200
            redis.stop()
            response = client.get("/ready")
            health = client.get("/health")
        finally:
            redis.stop()
        assert response.status_code == 503 and response.headers["Retry-After"]
        body = response.get_json()
        assert body["error_code"] == "not_ready" and body["failing"] == ["job_store"]
        assert body["checks"]["job_store"] == "redis_disconnected"
        assert health.status_code == 200 and health.get_json()["status"] == "degraded"

    def test_unreachable_clamd_is_named(self, tmp_path):
        client = client_for(tmp_path, clamav_host="127.0.0.1", clamav_port=free_port())
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.get_json()["failing"] == ["clamav"]

    @pytest.mark.clamd
    def test_running_clamd_is_ok(self, tmp_path, clamd):  # noqa: F811
        client = client_for(tmp_path, clamav_socket=clamd.socket_path)
        response = client.get("/ready")
        assert response.status_code == 200
        assert response.get_json()["checks"]["clamav"] == "ok"

    def test_unreachable_nhost_is_named(self, tmp_path):
        client = client_for(
            tmp_path,
            nhost_graphql_url=f"http://127.0.0.1:{free_port()}/v1/graphql",
            nhost_admin_secret="test-admin-secret",
        )
        response = client.get("/ready")
        assert response.status_code == 503
        body = response.get_json()
        assert body["failing"] == ["nhost"] and body["checks"]["nhost"] == "unreachable"
        assert "test-admin-secret" not in response.get_data(as_text=True)


class TestHealth:
    """/health does not look at ClamAV or Nhost: a platform restart must not follow them."""

    def test_health_ignores_optional_dependencies(self, tmp_path):
        client = client_for(
            tmp_path,
            clamav_host="127.0.0.1",
            clamav_port=free_port(),
            nhost_graphql_url=f"http://127.0.0.1:{free_port()}/v1/graphql",
            nhost_admin_secret="s",
        )
        response = client.get("/health")
        assert response.status_code == 200 and response.get_json()["status"] == "healthy"


class TestOpenRoutes:
    """Probes, Prometheus and the API description need no API key; the API itself does."""

    @pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json", "/docs"])
    def test_open_without_a_key(self, tmp_path, path):
        client = client_for(tmp_path, api_keys="a-key")
        assert client.get(path).status_code == 200

    def test_api_routes_want_the_key(self, tmp_path):
        client = client_for(tmp_path, api_keys="a-key")
        assert client.get("/job/abc").status_code == 401
        assert client.get("/job/abc", headers={"X-API-Key": "a-key"}).status_code == 404

    def test_metrics_token_is_not_taken_for_an_nhost_token(self, tmp_path):
        client = client_for(
            tmp_path, metrics_token="m-token", api_keys="a-key", nhost_jwt_secret=JWT_SECRET_SETTING
        )
        bearer = {"Authorization": "Bearer m-token"}
        assert client.get("/metrics", headers=bearer).status_code == 200
        # Elsewhere the same header is an (invalid) Nhost user token.
        assert client.get("/job/abc", headers=bearer).get_json()["error_code"] == "invalid_token"
