"""``/healthz`` and ``/readyz`` (docs/operations.md#health-endpoints)."""

from __future__ import annotations

import pytest
from django.test import Client

from parley.platform import lifecycle
from parley.testing.simulators import free_port


@pytest.fixture
def anonymous() -> Client:
    return Client()


def test_healthz_answers_without_credentials_or_database(anonymous: Client) -> None:
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.redis
def test_readyz_is_ready_when_the_database_and_redis_answer(anonymous: Client) -> None:
    response = anonymous.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["draining"] == {"ok": True}


@pytest.mark.django_db
def test_readyz_is_unavailable_while_draining(anonymous: Client) -> None:
    lifecycle.drain_begin()
    try:
        response = anonymous.get("/readyz")
    finally:
        lifecycle.drain_reset()
    assert response.status_code == 503
    assert response.json()["checks"]["draining"] == {"ok": False}
    assert response.json()["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_names_the_redis_that_does_not_answer(anonymous: Client, settings) -> None:  # noqa: ANN001
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = anonymous.get("/readyz")
    assert response.status_code == 503
    check = response.json()["checks"]["redis"]
    assert check["ok"] is False and "ConnectionError" in check["error"]


@pytest.mark.django_db
def test_probes_answer_any_host_other_urls_keep_the_allowlist(anonymous: Client, settings) -> None:  # noqa: ANN001
    """Orchestrators probe by the pod's address; ALLOWED_HOSTS still guards everything else."""
    settings.ALLOWED_HOSTS = ["parley.example.org"]
    assert anonymous.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert anonymous.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code in (200, 503)
    assert anonymous.get("/dashboard/", HTTP_HOST="10.1.2.3:8000").status_code == 400
