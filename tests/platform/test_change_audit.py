"""The audit log of admin changes (django-auditlog): who changed which agent, prompt, tool
schema, model pool or role, when, before and after, through the dashboard, the API (token) and
the Django admin; shown read-only in the admin and on the dashboard's Audit log page."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.forms.models import model_to_dict
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from parley.agents.models import Agent, PromptVersion
from parley.platform.dashboard.roles import role_assign
from parley.platform.fleet.models import ModelPool
from parley.tools.models import ToolSchema
from tests.conftest import client_for, user_with
from tests.platform.test_dashboard import form_data

pytestmark = pytest.mark.django_db

SENTINEL = "sk-audit-sentinel-0123456789abcdef"


def rows_for(model: type, pk: object) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_pk=str(pk)
        ).order_by("timestamp", "id")
    )


def test_three_ways_of_changing_things_each_record_who_what_and_how(hospital_agent) -> None:  # noqa: ANN001
    dana = user_with("dana", role="admin")
    ops = user_with("ops", role="admin")
    root = user_with("root", superuser=True)
    before = LogEntry.objects.count()

    # 1. An admin edits the agent in the dashboard.
    response = client_for(dana).post(
        f"/dashboard/agents/{hospital_agent.slug}/edit/",
        form_data(hospital_agent, name="Front desk", endpointing_ms=650),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    [edit] = [r for r in rows_for(Agent, hospital_agent.pk) if r.actor == dana]
    assert edit.action == LogEntry.Action.UPDATE
    assert edit.actor == dana
    assert edit.changes["name"] == ["Hospital receptionist", "Front desk"]
    assert edit.changes["endpointing_ms"] == [500, 650]
    assert "updated_at" not in edit.changes  # changes people make, not timestamps

    # 2. Another admin publishes a prompt version through the API with a token (DRF
    # authenticates in the view, after the audit middleware ran).
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=ops).key}")
    created = api.post(
        f"/api/agents/{hospital_agent.slug}/prompts/", {"text": "Be brief."}, format="json"
    )
    assert created.status_code == 201, created.content
    version = PromptVersion.objects.get(agent=hospital_agent, text="Be brief.")
    [publish] = [r for r in rows_for(PromptVersion, version.pk) if r.action == 0]
    assert publish.actor == ops
    assert publish.changes["text"] == [None, "Be brief."]

    # 3. A superuser changes a tool schema in the Django admin.
    schema = ToolSchema.objects.filter(scenario__slug="hospital").first()
    data = model_to_dict(schema, fields=["scenario", "name", "description", "side_effecting"])
    data = {k: v for k, v in data.items() if v is not False}
    data.update(parameters=json.dumps(schema.parameters), description="Look a doctor up.")
    changed = client_for(root).post(f"/admin/tools/toolschema/{schema.pk}/change/", data)
    assert changed.status_code == 302, changed.content.decode()[:3000]
    [admin_edit] = [r for r in rows_for(ToolSchema, schema.pk) if r.actor == root]
    assert admin_edit.actor == root and admin_edit.action == LogEntry.Action.UPDATE
    assert admin_edit.changes["description"] == [schema.description, "Look a doctor up."]

    assert LogEntry.objects.count() - before == 3
    assert all(r.timestamp is not None for r in (edit, publish, admin_edit))


def test_secrets_never_reach_the_diff(monkeypatch) -> None:  # noqa: ANN001
    """Model pools and servers hold the *name* of the key's variable; the value stays out."""
    monkeypatch.setenv("VLLM_PROD_KEY", SENTINEL)
    root = user_with("root", superuser=True)
    pool = ModelPool.objects.create(
        slug="vllm", name="vLLM", kind="openai", base_url="http://vllm-1.internal:8000/v1"
    )
    data = {
        **model_to_dict(pool, exclude=["id"]),
        "api_key_env": "VLLM_PROD_KEY",
        "servers-TOTAL_FORMS": 0,
        "servers-INITIAL_FORMS": 0,
    }
    response = client_for(root).post(f"/admin/fleet/modelpool/{pool.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    rows = rows_for(ModelPool, pool.pk)
    assert rows[-1].changes["api_key_env"] == ["", "VLLM_PROD_KEY"]
    everything = json.dumps(
        list(LogEntry.objects.values("changes", "changes_text", "serialized_data", "object_repr")),
        default=str,
    )
    assert SENTINEL not in everything


def test_role_changes_are_recorded(hospital_agent) -> None:  # noqa: ANN001
    sam = user_with("sam")
    call_command("role", user="sam", role="analyst")
    role_assign(user=sam, role="admin")
    rows = [r for r in rows_for(type(sam), sam.pk) if "groups" in (r.changes or {})]
    operations = [(r.changes["groups"]["operation"], r.changes["groups"]["objects"]) for r in rows]
    assert operations == [("add", ["analyst"]), ("delete", ["analyst"]), ("add", ["admin"])]
    assert all("password" not in (r.changes or {}) for r in rows_for(type(sam), sam.pk))


def test_the_audit_page_lists_changes_for_admins_only(hospital_agent) -> None:  # noqa: ANN001
    dana = user_with("dana", role="admin")
    admin = client_for(dana)
    admin.post(
        f"/dashboard/agents/{hospital_agent.slug}/edit/",
        form_data(hospital_agent, greeting="Good morning, hospital."),
    )
    page = admin.get(f"/dashboard/audit/?agent={hospital_agent.slug}&user=dana")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Good morning, hospital." in text and "greeting" in text and "dana" in text
    assert (
        'href="/dashboard/audit/?agent=hospital-receptionist"'
        in admin.get(f"/dashboard/agents/{hospital_agent.slug}/").content.decode()
    )
    # Another agent's filter shows none of it; so does a day before anything happened.
    assert "Good morning" not in admin.get("/dashboard/audit/?agent=nobody").content.decode()
    assert "Good morning" not in admin.get("/dashboard/audit/?until=2000-01-01").content.decode()
    analyst = client_for(user_with("ana", role="analyst"))
    assert analyst.get("/dashboard/audit/").status_code == 403


def test_the_django_admin_shows_the_log_read_only(hospital_agent) -> None:  # noqa: ANN001
    root = client_for(user_with("root", superuser=True))
    hospital_agent.greeting = "Changed"
    hospital_agent.save()
    entry = LogEntry.objects.latest("timestamp")
    assert root.get("/admin/auditlog/logentry/").status_code == 200
    assert root.get(f"/admin/auditlog/logentry/{entry.pk}/change/").status_code == 200
    assert root.post(f"/admin/auditlog/logentry/{entry.pk}/change/", {}).status_code == 403
    assert (
        root.post(f"/admin/auditlog/logentry/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert LogEntry.objects.filter(pk=entry.pk).exists()
