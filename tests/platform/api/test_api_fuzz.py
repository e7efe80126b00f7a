"""Schemathesis against the OpenAPI schema (docs/api.md#fuzzing): no request gets a 5xx.

The schema is read from ``/api/schema/`` of the Django app itself (WSGI, in-process, no
server) with an admin's DRF token, and every operation is called with requests Hypothesis
derives from it: valid ones, and bodies and query strings that bend the schema's rules
(wrong types, missing fields, out-of-range values). The database holds an agent, a finished
conversation with turns, a tool call and a recording, a day report and an export, and each
request that names an id is also sent with the seeded one, so detail, rollback, transcript
and download paths run past their 404.

Checked on every response: ``not_a_server_error`` (no 5xx; see :data:`CHECKS`).
``PARLEY_FUZZ_EXAMPLES`` sets the examples per operation (default 8); run it long with
``PARLEY_FUZZ_EXAMPLES=500``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from parley.conversations.models import AgentDayReport, ConversationExport, JobStatus
from parley.platform.dashboard.roles import ADMIN
from tests.platform.api.conftest import user_with
from tests.platform.api.factories import conversation_finish, recording_write

pytestmark = pytest.mark.django_db

FUZZ_EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "8"))
#: pytest-timeout's limit per operation, grown for long runs.
TIMEOUT_S = max(300, FUZZ_EXAMPLES * 2)
#: No 5xx. Not checked (yet): status-code and Content-Type conformance. The schema does not
#: list every 404 (an unknown agent's prompts, PATCH) nor the 400 of publishing an agent
#: as it is, and an id Django's URL converter refuses gets its HTML 404 page.
CHECKS = [schemathesis.checks.not_a_server_error]


@pytest.fixture
def seeded(hospital_agent, tmp_path, settings) -> dict[str, Any]:  # noqa: ANN001
    """Rows for every kind of id in the API's paths, and an admin's token."""
    settings.PARLEY_EXPORTS_DIR = tmp_path / "exports"
    conversation = conversation_finish(
        agent=hospital_agent,
        turns=[{}, {"user_text": "Is Dr. Lovelace in today?"}],
        tools=[{"turn": 1}],
    )
    recording_write(conversation, tmp_path)
    report = AgentDayReport.objects.create(
        agent=hospital_agent,
        day=dt.date.today() - dt.timedelta(days=1),
        status=JobStatus.DONE,
    )
    admin = user_with("fuzz-admin", role=ADMIN)
    exported = tmp_path / "export.jsonl"
    exported.write_text('{"conversation_id": "x"}\n')
    since = dt.datetime.combine(report.day, dt.time(0), tzinfo=dt.UTC)
    export = ConversationExport.objects.create(
        requested_by=admin,
        since=since,
        until=since + dt.timedelta(days=1),
        status=JobStatus.DONE,
        total=1,
        done=1,
        path=str(exported),
        size_bytes=exported.stat().st_size,
    )
    token, _ = Token.objects.get_or_create(user=admin)
    return {
        "headers": {"Authorization": f"Token {token.key}"},
        "ids": {
            "slug": hospital_agent.slug,
            "version": hospital_agent.prompts.order_by("version").first().version,
            "conversation_id": str(conversation.pk),
            "report_id": report.pk,
            "export_id": str(export.pk),
        },
    }


@pytest.fixture
def wsgi_app():  # noqa: ANN201
    """Django's WSGI app on the test's database connection: like Django's test client, keep
    each request from closing the connection (and so the test's transaction)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _openapi() -> dict[str, Any]:
    """The schema ``/api/schema/`` serves, built without a request (no database needed)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    raw = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(raw))


schema = schemathesis.openapi.from_dict(_openapi())


@schema.parametrize()
@pytest.mark.timeout(TIMEOUT_S)
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_gets_a_server_error(case, seeded, wsgi_app) -> None:  # noqa: ANN001
    case.call_and_validate(app=wsgi_app, headers=seeded["headers"], checks=CHECKS)
    if case.path_parameters:
        # Again with ids that exist: past the 404, into the view's own code.
        case.path_parameters = {
            name: seeded["ids"].get(name, value) for name, value in case.path_parameters.items()
        }
        case.call_and_validate(app=wsgi_app, headers=seeded["headers"], checks=CHECKS)


def test_the_schema_is_the_served_one_and_every_path_id_is_seeded(seeded, wsgi_app) -> None:  # noqa: ANN001
    """The fuzzed schema is the one ``/api/schema/`` serves, and every path parameter in it
    has a seeded id (else the fuzz would stop at 404s)."""
    served = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", wsgi_app, headers=seeded["headers"]
    )
    assert served.raw_schema == schema.raw_schema
    names = {
        parameter["name"]
        for path in schema.raw_schema["paths"].values()
        for operation in path.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }
    assert names == set(seeded["ids"])
    assert uuid.UUID(seeded["ids"]["conversation_id"])


def test_a_nul_character_in_a_slug_is_a_400_not_a_500(seeded) -> None:  # noqa: ANN001
    """Found by the fuzz: PostgreSQL refuses NUL in text, so the slug lookup was a 500."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=seeded["headers"]["Authorization"])
    for url, method, body, field in (
        ("/api/agents/hospital-receptionist/", "patch", {"scenario": "hospital\x00"}, "scenario"),
        ("/api/agents/hospital-receptionist/", "patch", {"model_pool": "\x00"}, "model_pool"),
        (
            "/api/reports/",
            "post",
            {"agent": "hospital-receptionist\x00", "day": "2025-01-01"},
            "agent",
        ),
        ("/api/exports/", "post", {"since": "2025-01-01", "agent": "\x00"}, "agent"),
    ):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 400, (url, response.content)
        assert field in response.json(), response.json()
