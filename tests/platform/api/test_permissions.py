"""Who may call what: every endpoint × anonymous, no role, analyst, admin.

Reads: analysts and admins. Agent and prompt writes: admins. Reports and exports: analysts
and admins may ask for them. Anonymous: 401 with ``WWW-Authenticate: Token``; no role: 403.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from parley.agents.services import prompt_version_create
from parley.conversations.models import AgentDayReport, ConversationExport, JobStatus
from tests.platform.api.conftest import token_client, user_with
from tests.platform.api.factories import conversation_finish, recording_write

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {slug}, {cid}, {rid}, {eid}
    level: str  # read | analyze | configure
    ok: int  # the status a permitted user gets
    body: dict | None = None


ENDPOINTS = [
    Endpoint("get", "/api/agents/", "read", 200),
    Endpoint("get", "/api/agents/{slug}/", "read", 200),
    Endpoint(
        "post",
        "/api/agents/",
        "configure",
        201,
        {
            "slug": "front-desk",
            "name": "Front desk",
            "scenario": "hospital",
            "model_pool": "simulator",
            "prompt": "You answer the phone.",
        },
    ),
    Endpoint("patch", "/api/agents/{slug}/", "configure", 200, {"greeting": "Hello!"}),
    Endpoint("post", "/api/agents/{slug}/publish", "configure", 200, {"published": False}),
    Endpoint("get", "/api/agents/{slug}/prompts/", "read", 200),
    Endpoint("post", "/api/agents/{slug}/prompts/", "configure", 201, {"text": "Be brief."}),
    Endpoint("post", "/api/agents/{slug}/prompts/1/rollback", "configure", 201),
    Endpoint("get", "/api/conversations/", "read", 200),
    Endpoint("get", "/api/conversations/{cid}/", "read", 200),
    Endpoint("get", "/api/conversations/{cid}/turns/", "read", 200),
    Endpoint("get", "/api/conversations/{cid}/tool-calls/", "read", 200),
    Endpoint("get", "/api/conversations/{cid}/transcript", "read", 200),
    Endpoint("get", "/api/conversations/{cid}/recording", "read", 200),
    Endpoint("get", "/api/reports/", "read", 200),
    Endpoint("get", "/api/reports/{rid}/", "read", 200),
    Endpoint("post", "/api/reports/", "analyze", 202, {"agent": "{slug}", "day": "{day}"}),
    Endpoint("get", "/api/exports/", "read", 200),
    Endpoint("get", "/api/exports/{eid}/", "read", 200),
    Endpoint("get", "/api/exports/{eid}/download", "read", 200),
    Endpoint(
        "post",
        "/api/exports/",
        "analyze",
        202,
        {"since": "{day}", "until": "{day}", "redact": True},
    ),
    Endpoint("get", "/api/schema/", "read", 200),
    Endpoint("get", "/api/docs/", "read", 200),
]

ROLES = ("anonymous", "norole", "analyst", "admin")


def expected(endpoint: Endpoint, role: str) -> int:
    if role == "anonymous":
        return 401
    if role == "norole":
        return 403
    if role == "analyst" and endpoint.level == "configure":
        return 403
    return endpoint.ok


@pytest.fixture
def world(hospital_agent, tmp_path, settings):  # noqa: ANN001, ANN201
    """An agent with two prompt versions, a recorded conversation with a tool call, a day
    report; exports are made per user (analysts see only their own) in ``tmp_path``."""
    settings.PARLEY_EXPORTS_DIR = tmp_path
    prompt_version_create(agent=hospital_agent, text="You are a terse hospital receptionist.")
    conversation = conversation_finish(agent=hospital_agent, tools=[{"turn": 1}])
    recording_write(conversation, tmp_path)
    day = timezone.now().date() - dt.timedelta(days=1)
    report = AgentDayReport.objects.create(
        agent=hospital_agent, day=day, status=JobStatus.DONE, figures={"calls": 1}
    )
    return {
        "slug": hospital_agent.slug,
        "cid": str(conversation.pk),
        "rid": str(report.pk),
        "day": day.isoformat(),
        "folder": tmp_path,
    }


def export_done(user: object | None, folder: Path) -> ConversationExport:
    """A finished export of ``user``'s, its file in ``folder`` (``PARLEY_EXPORTS_DIR``)."""
    path = folder / f"export-{ConversationExport.objects.count()}.jsonl"
    path.write_text('{"conversation_id": "x"}\n')
    now = timezone.now()
    return ConversationExport.objects.create(
        requested_by=user,
        since=now - dt.timedelta(days=1),
        until=now,
        status=JobStatus.DONE,
        total=1,
        done=1,
        path=str(path),
        size_bytes=path.stat().st_size,
        finished_at=now,
    )


def fill(text: str, values: dict) -> str:
    return text.format(**{k: v for k, v in values.items() if isinstance(v, str)})


def call(client: APIClient, endpoint: Endpoint, values: dict):  # noqa: ANN201
    body = (
        {k: fill(v, values) if isinstance(v, str) else v for k, v in endpoint.body.items()}
        if endpoint.body is not None
        else None
    )
    method = getattr(client, endpoint.method)
    return method(fill(endpoint.path, values), data=body, format="json")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_permissions_matrix(endpoint: Endpoint, role: str, world, clients) -> None:  # noqa: ANN001
    client = clients(role)
    values = dict(world)
    if "{eid}" in endpoint.path:  # an export of the caller's own
        values["eid"] = str(export_done(_client_user(client), world["folder"]).pk)
    response = call(client, endpoint, values)
    want = expected(endpoint, role)
    assert response.status_code == want, (role, endpoint, response.content[:300])
    if want == 401:
        assert response["WWW-Authenticate"] == "Token"
    if want == 403 and response["Content-Type"] == "application/json":  # not schema, docs
        detail = response.json()["detail"]
        assert ("no Parley role" in detail) if role == "norole" else ("Only admins" in detail)


def _client_user(client: APIClient) -> object | None:
    """The user whose token the client sends (``None``: anonymous)."""
    header = client._credentials.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    return Token.objects.get(key=header.split()[1]).user


def test_session_of_a_dashboard_login_works_too(hospital_agent) -> None:  # noqa: ANN001
    client = APIClient()
    client.force_login(user_with("ses", role="analyst"))
    assert client.get("/api/agents/").status_code == 200
    assert (
        client.patch(
            f"/api/agents/{hospital_agent.slug}/", {"greeting": "x"}, format="json"
        ).status_code
        == 403
    )


def test_a_wrong_token_is_401_and_an_inactive_user_is_refused(hospital_agent) -> None:  # noqa: ANN001
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = bad.get("/api/agents/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    user = user_with("gone", role="admin")
    client = token_client(user)
    user.is_active = False
    user.save()
    assert client.get("/api/agents/").status_code == 401


def test_analysts_see_and_download_only_their_own_exports(world, analyst_user, tmp_path) -> None:  # noqa: ANN001
    other = user_with("bob", role="analyst")
    theirs = export_done(other, tmp_path)
    mine = export_done(analyst_user, tmp_path)
    client = token_client(analyst_user)
    listed = [row["id"] for row in client.get("/api/exports/").json()["results"]]
    assert listed == [str(mine.pk)]
    assert client.get(f"/api/exports/{theirs.pk}/").status_code == 404
    assert client.get(f"/api/exports/{theirs.pk}/download").status_code == 404
    admin = token_client(user_with("root", role="admin"))
    listed = {row["id"] for row in admin.get("/api/exports/").json()["results"]}
    assert listed == {str(mine.pk), str(theirs.pk)}
    assert admin.get(f"/api/exports/{theirs.pk}/download").status_code == 200
