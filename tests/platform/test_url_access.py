"""Every URL pattern of the project, walked with Django's resolver: anonymous requests are
refused (302 to a login page, 401 or 403) unless the path is on the documented public list, and
analysts cannot write (POST/PUT/PATCH/DELETE → 403 or 405) except where asking for a report or
an export is their job.

A new URL that forgets its guard fails here; docs/security.md lists the public endpoints.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import client_for, user_with

pytestmark = pytest.mark.django_db

#: Public on purpose (docs/security.md, "Public endpoints"): the login pages, the call-token
#: endpoint (guarded by the agent's publishable key, its allowed origins and rate limits), the
#: health probes an orchestrator sends, and the redirect of ``/`` to the dashboard (which
#: then asks for a login). ``/static/`` (widget.js) is served by the web server, not a URL here.
PUBLIC_PATHS = {
    "/": "redirects to /dashboard/, which needs a login",
    "/dashboard/login/": "the login form",
    "/dashboard/logout/": "logging out (anonymous: back to the login form)",
    "/admin/login/": "the Django admin's login form",
    "/admin/logout/": "the Django admin's log out",
    "/api/v1/call-tokens": "publishable key + allowed Origin + rate limits (docs/widget.md)",
    "/healthz": "liveness probe",
    "/readyz": "readiness probe",
}
#: Writes analysts may make: asking for a day report or an export (the "analyze" level).
ANALYST_WRITES = {
    ("/dashboard/reports/generate/", "post"),
    ("/dashboard/exports/new/", "post"),
    ("/api/reports/", "post"),
    ("/api/exports/", "post"),
}
LOGIN_PATHS = ("/dashboard/login/", "/admin/login/")
WRITE_METHODS = ("post", "put", "patch", "delete")
READ_WRITE_METHODS = ("get", *WRITE_METHODS)

_SAMPLES = {
    "int": "1",
    "slug": "no-such-agent",
    "uuid": str(uuid.UUID(int=1)),
    "str": "2024-01-01",
    "path": "1",
}


@dataclass(frozen=True)
class Route:
    path: str
    name: str
    callback: Any


def _sample_path(route: str) -> str:
    """A concrete path for a ``path()`` route: each converter gets a value of its type."""
    return re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: _SAMPLES.get(m.group(1) or "str", "x"), route)


def _regex_path(regex: str) -> str:
    """A concrete path for the admin's two ``re_path()`` routes."""
    if "app_label" in regex:
        return re.sub(r"\^\(\?P<app_label>([a-z_]+)\|.*\)/\$$", r"\1/", regex)
    return regex.replace("(?P<url>.*)$", "no-such-page/")


def routes() -> Iterator[Route]:
    """Every URL pattern of ``ROOT_URLCONF``, as a concrete path."""

    def walk(patterns: list, prefix: str) -> Iterator[Route]:
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                raw = prefix + str(p.pattern)
                path = _regex_path(raw) if "(?P<" in raw else _sample_path(raw)
                yield Route(
                    path="/" + path.replace("^", "").replace("$", ""),
                    name=str(p.name),
                    callback=p.callback,
                )

    return walk(get_resolver().url_patterns, "")


ALL_ROUTES = list(routes())


def _refused(response: Any) -> bool:
    if response.status_code in (401, 403):
        return True
    if response.status_code == 302:
        return response["Location"].split("?")[0] in LOGIN_PATHS
    return False


def test_the_walk_covers_the_whole_project() -> None:
    paths = {r.path for r in ALL_ROUTES}
    assert len(ALL_ROUTES) > 100  # the admin's pages included
    assert {"/dashboard/audit/", "/metrics", "/api/schema/", "/api/docs/"} <= paths
    assert "/admin/auth/" in paths and "/admin/no-such-page/" in paths


def test_anonymous_requests_are_refused() -> None:
    client = Client()
    holes, checked = [], 0
    for route in ALL_ROUTES:
        if route.path in PUBLIC_PATHS:
            continue
        # Every method on the dashboard and the API; the admin's pages GET and POST.
        methods = ("get", "post") if route.path.startswith("/admin/") else READ_WRITE_METHODS
        for method in methods:
            response = getattr(client, method)(route.path)
            checked += 1
            if not _refused(response):
                holes.append((method, route.path, response.status_code))
    assert not holes
    assert checked > 250


def test_public_paths_are_what_the_docs_say() -> None:
    anonymous = Client()
    assert anonymous.get("/")["Location"] == "/dashboard/"
    assert anonymous.get("/dashboard/")["Location"].startswith("/dashboard/login/")
    # The call-token endpoint gives nothing without a valid publishable key.
    refused = anonymous.post(
        "/api/v1/call-tokens",
        {"agent": "hospital-receptionist", "key": "pk_wrong"},
        content_type="application/json",
    )
    assert refused.status_code == 403 and "token" not in refused.json()


@pytest.fixture
def analyst(db):  # noqa: ANN001, ANN201
    return client_for(user_with("ana-walk", role="analyst"))


def test_analysts_cannot_write_anywhere(analyst, hospital_agent) -> None:  # noqa: ANN001
    writes = 0
    for route in ALL_ROUTES:
        if route.path in PUBLIC_PATHS:
            continue
        path = route.path.replace("no-such-agent", hospital_agent.slug)
        for method in WRITE_METHODS:
            if (path, method) in ANALYST_WRITES:
                continue
            if path.startswith("/admin/") and method != "post":
                continue
            response = getattr(analyst, method)(path)
            writes += 1
            refused = response.status_code in (403, 405) or (
                # not staff: the Django admin sends analysts to its login page
                path.startswith("/admin/") and _refused(response)
            )
            assert refused, (method, path, response.status_code)
    assert writes > 250
    hospital_agent.refresh_from_db()
    assert hospital_agent.published  # nothing changed


def test_every_dashboard_view_declares_its_role_level() -> None:
    """role_required marks each view with its level; only the login pages go without."""
    for route in ALL_ROUTES:
        if route.path.startswith("/dashboard/") and route.path not in PUBLIC_PATHS:
            assert getattr(route.callback, "dashboard_level", None) in (
                "read",
                "analyze",
                "configure",
            ), route.path
    levels = {
        r.path: r.callback.dashboard_level
        for r in ALL_ROUTES
        if hasattr(r.callback, "dashboard_level")
    }
    assert levels["/dashboard/audit/"] == "configure"
    assert {p for p, level in levels.items() if level == "analyze"} == {
        p for p, m in ANALYST_WRITES if p.startswith("/dashboard/")
    }
