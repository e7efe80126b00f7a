"""Production settings pass ``check --deploy``; CSRF guards the dashboard's forms and the API's
session writes, not its token writes."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from parley.agents.models import Agent
from tests.conftest import PASSWORD, user_with

ROOT = Path(__file__).resolve().parents[2]


def production_env(**extra: str) -> dict[str, str]:
    """The variables a production deployment sets, and nothing of the developer's."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "parley.platform.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://parley:unused@127.0.0.1:5432/parley",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DJANGO_ALLOWED_HOSTS": "parley.example.com",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://parley.example.com",
    }
    env.update(extra)
    return env


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings() -> None:
    done = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNINGS" not in done.stderr and "System check identified no issues" in done.stdout


def test_production_settings_values() -> None:
    code = (
        "from django.conf import settings as s; import json; print(json.dumps({k: getattr(s, k) "
        "for k in ('SECURE_HSTS_SECONDS', 'SECURE_SSL_REDIRECT', 'SECURE_REDIRECT_EXEMPT', "
        "'SESSION_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_SAMESITE', "
        "'CSRF_COOKIE_SECURE', 'CSRF_COOKIE_HTTPONLY', 'X_FRAME_OPTIONS', "
        "'SECURE_CONTENT_TYPE_NOSNIFF', 'ALLOWED_HOSTS', 'CSRF_TRUSTED_ORIGINS', 'DEBUG')}))"
    )
    done = run_manage("shell", "-c", code, env=production_env(DJANGO_SECURE_HSTS_SECONDS="3600"))
    assert done.returncode == 0, done.stderr
    import json

    values = json.loads(done.stdout.strip().splitlines()[-1])
    assert values == {
        "SECURE_HSTS_SECONDS": 3600,  # from the environment
        "SECURE_SSL_REDIRECT": True,
        "SECURE_REDIRECT_EXEMPT": ["^healthz$", "^readyz$"],
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_HTTPONLY": True,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "ALLOWED_HOSTS": ["parley.example.com"],
        "CSRF_TRUSTED_ORIGINS": ["https://parley.example.com"],
        "DEBUG": False,
    }


def test_production_refuses_to_start_without_its_secrets() -> None:
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    done = run_manage("check", env=env)
    assert done.returncode != 0 and "DJANGO_SECRET_KEY" in done.stderr


# CSRF -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dashboard_forms_need_the_csrf_token(hospital_agent) -> None:  # noqa: ANN001
    user_with("dana", role="admin")
    browser = Client(enforce_csrf_checks=True)
    login_page = browser.get("/dashboard/login/")
    token = login_page.context["csrf_token"]
    # The login form itself: refused without the token, accepted with it.
    assert (
        browser.post("/dashboard/login/", {"username": "dana", "password": PASSWORD}).status_code
        == 403
    )
    logged_in = browser.post(
        "/dashboard/login/",
        {"username": "dana", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert logged_in.status_code == 302
    publish = f"/dashboard/agents/{hospital_agent.slug}/publish/"
    assert browser.post(publish, {"published": "0"}).status_code == 403
    assert Agent.objects.get(pk=hospital_agent.pk).published
    token = browser.get(f"/dashboard/agents/{hospital_agent.slug}/").context["csrf_token"]
    done = browser.post(publish, {"published": "0", "csrfmiddlewaretoken": token})
    assert done.status_code == 302
    assert not Agent.objects.get(pk=hospital_agent.pk).published


@pytest.mark.django_db
def test_api_token_writes_are_csrf_exempt_and_session_writes_are_not(hospital_agent) -> None:  # noqa: ANN001
    dana = user_with("dana", role="admin")
    url = f"/api/agents/{hospital_agent.slug}/publish"

    by_token = Client(enforce_csrf_checks=True)
    key = Token.objects.create(user=dana).key
    response = by_token.post(
        url,
        {"published": False},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {key}",
    )
    assert response.status_code == 200  # no cookie is involved: nothing to forge

    by_session = Client(enforce_csrf_checks=True)
    by_session.force_login(dana)
    refused = by_session.post(url, {"published": True}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not Agent.objects.get(pk=hospital_agent.pk).published
    by_session.get("/dashboard/")  # sets the CSRF cookie
    cookie = by_session.cookies["csrftoken"].value
    accepted = by_session.post(
        url, {"published": True}, content_type="application/json", HTTP_X_CSRFTOKEN=cookie
    )
    assert accepted.status_code == 200
    assert Agent.objects.get(pk=hospital_agent.pk).published
