"""The dashboard at /dashboard/: roles, the agent form, prompts, publishing, test calls, lists."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from parley.agents.call_tokens import call_token_verify
from parley.agents.models import Agent, PromptVersion, Scenario
from parley.agents.services import prompt_version_create
from parley.conversations.models import Conversation, Turn
from parley.conversations.services import conversation_summary_update
from parley.platform.dashboard.forms import AgentForm
from parley.platform.dashboard.roles import ADMIN, ANALYST, role_of
from parley.tools.models import ToolSchema
from tests.conftest import PASSWORD, client_for, user_with

pytestmark = pytest.mark.django_db


def form_data(agent: Agent, **overrides) -> dict:  # noqa: ANN003
    """What the edit page posts back for ``agent`` unchanged, then ``overrides``."""
    fields = [f for f in AgentForm.Meta.fields if f != "slug"]
    data = {k: v for k, v in model_to_dict(agent, fields=fields).items() if v is not None}
    if not data.get("deepgram_smart_format"):
        data.pop("deepgram_smart_format", None)
    data["prompt"] = agent.prompts.get(active=True).text
    data["tools"] = [t.pk for t in agent.tools.all()]
    data.update(overrides)
    return data


def url(name: str, *args) -> str:  # noqa: ANN002
    return reverse(f"dashboard:{name}", args=args)


# Access -----------------------------------------------------------------------------------


def test_every_page_needs_a_login(hospital_agent) -> None:  # noqa: ANN001
    slug = hospital_agent.slug
    pages = [
        url("agents"),
        url("agent-create"),
        url("agent-detail", slug),
        url("agent-edit", slug),
        url("agent-call", slug),
        url("prompt-diff", slug, 1),
        url("conversations"),
    ]
    client = Client()
    for page in pages:
        response = client.get(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith(url("login") + "?next="), page
    response = client.post(url("call-token", slug))
    assert response.status_code == 302 and response["Location"].startswith(url("login"))


def test_root_redirects_to_the_dashboard_and_login_works(admin_user) -> None:  # noqa: ANN001
    client = Client()
    assert client.get("/")["Location"] == url("agents")
    page = client.get(url("login"))
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post(url("login"), {"username": "root", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == url("agents")
    assert client.get(url("agents")).status_code == 200
    bad = Client().post(url("login"), {"username": "root", "password": "wrong"})
    assert bad.status_code == 200 and b"alert-error" in bad.content


def test_logout_is_a_post(admin) -> None:  # noqa: ANN001
    response = admin.post(url("logout"))
    assert response.status_code == 302 and response["Location"] == url("login")
    assert admin.get(url("agents")).status_code == 302


def test_a_user_without_a_role_gets_the_403_page(hospital_agent) -> None:  # noqa: ANN001
    client = client_for(user_with("nobody"))
    response = client.get(url("agents"))
    assert response.status_code == 403
    assert b"no dashboard role" in response.content


def test_role_of() -> None:
    assert role_of(user_with("su", superuser=True)) == ADMIN
    assert role_of(user_with("grp-admin", role=ADMIN)) == ADMIN
    assert role_of(user_with("grp-analyst", role=ANALYST)) == ANALYST
    assert role_of(user_with("plain")) is None


def test_analyst_reads_but_cannot_change_anything(analyst, hospital_agent) -> None:  # noqa: ANN001
    slug = hospital_agent.slug
    prompt_version_create(agent=hospital_agent, text="Second prompt.")
    for page in (
        url("agents"),
        url("agent-detail", slug),
        url("conversations"),
        url("prompt-diff", slug, 2),
    ):
        assert analyst.get(page).status_code == 200, page
    detail = analyst.get(url("agent-detail", slug)).content.decode()
    assert url("agent-edit", slug) not in detail and url("agent-publish", slug) not in detail
    assert "Roll back" not in detail

    for page in (url("agent-create"), url("agent-edit", slug), url("agent-call", slug)):
        assert analyst.get(page).status_code == 403, page
    posts = {
        url("agent-edit", slug): form_data(hospital_agent, name="Renamed"),
        url("agent-create"): {"name": "x", "slug": "x"},
        url("agent-publish", slug): {"published": "0"},
        url("prompt-rollback", slug, 1): {},
        url("call-token", slug): {},
        url("agents"): {},
    }
    for page, data in posts.items():
        response = analyst.post(page, data)
        assert response.status_code == 403, page
        assert b"Analysts can read" in response.content
    hospital_agent.refresh_from_db()
    assert hospital_agent.name == "Hospital receptionist" and hospital_agent.published
    assert hospital_agent.prompts.get(active=True).version == 2
    assert Agent.objects.count() == 1


def test_members_of_the_admin_group_configure(hospital_agent) -> None:  # noqa: ANN001
    client = client_for(user_with("ops", role=ADMIN))
    assert client.get(url("agent-edit", hospital_agent.slug)).status_code == 200
    response = client.post(url("agent-publish", hospital_agent.slug), {"published": "0"})
    assert response.status_code == 302
    hospital_agent.refresh_from_db()
    assert not hospital_agent.published


# The agent form ---------------------------------------------------------------------------


def test_edit_page_groups_fields_and_shows_ranges(admin, hospital_agent) -> None:  # noqa: ANN001
    page = admin.get(url("agent-edit", hospital_agent.slug)).content.decode()
    for title in ("Basics", "Prompt", "Tools", "LLM", "Voice", "Turn-taking", "Widget"):
        assert f">{title}</h2>" in page
    assert '<details class="card card-details" id="card-cloud">' in page  # collapsed
    assert 'name="endpointing_ms"' in page and 'min="100"' in page and 'max="5000"' in page
    assert "100–5000 ms." in page
    assert 'step="0.05"' in page  # vad_threshold
    assert 'name="slug"' not in page  # the slug is fixed after creation
    assert "You are a hospital receptionist." in page  # the active prompt
    assert "LLM simulator" in page


def test_out_of_range_value_is_refused_inline_and_nothing_changes(admin, hospital_agent) -> None:  # noqa: ANN001
    before = model_to_dict(Agent.objects.get(pk=hospital_agent.pk))
    response = admin.post(
        url("agent-edit", hospital_agent.slug),
        form_data(hospital_agent, endpointing_ms=99999, name="Changed", prompt="New prompt."),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing was saved" in page  # the summary at the top
    assert '<a href="#id_endpointing_ms">End-of-turn silence</a>' in page
    assert 'id="id_endpointing_ms_error"' in page
    assert "Ensure this value is less than or equal to 5000." in page
    assert 'aria-invalid="true"' in page
    assert "<title>Edit Hospital receptionist · Parley</title>" in page
    assert model_to_dict(Agent.objects.get(pk=hospital_agent.pk)) == before
    assert hospital_agent.prompts.count() == 1


def test_a_bad_origin_is_refused_inline(admin, hospital_agent) -> None:  # noqa: ANN001
    response = admin.post(
        url("agent-edit", hospital_agent.slug),
        form_data(hospital_agent, allowed_origins="https://ok.example\nnot a url"),
    )
    assert response.status_code == 200
    assert b'id="id_allowed_origins_error"' in response.content
    hospital_agent.refresh_from_db()
    assert hospital_agent.allowed_origins == ""


def test_changing_the_prompt_adds_a_version_and_keeps_the_old_one(
    admin, admin_user, hospital_agent
) -> None:  # noqa: ANN001
    response = admin.post(
        url("agent-edit", hospital_agent.slug),
        form_data(
            hospital_agent,
            prompt="You are a kind receptionist.\r\nBe brief.",
            endpointing_ms=700,
            allowed_origins="HTTPS://WWW.Example.com:443/\n\nhttp://localhost:8000",
        ),
    )
    assert response.status_code == 302
    assert response["Location"] == url("agent-detail", hospital_agent.slug)
    v1, v2 = hospital_agent.prompts.order_by("version")
    assert (v1.version, v1.active, v1.text) == (1, False, "You are a hospital receptionist.")
    assert (v2.version, v2.active) == (2, True)
    assert v2.text == "You are a kind receptionist.\nBe brief."
    assert v2.created_by == admin_user
    hospital_agent.refresh_from_db()
    assert hospital_agent.endpointing_ms == 700
    assert hospital_agent.allowed_origins == "https://www.example.com\nhttp://localhost:8000"
    page = admin.get(response["Location"]).content.decode()
    assert "Prompt v2 is now active." in page


def test_an_unchanged_prompt_adds_no_version(admin, hospital_agent) -> None:  # noqa: ANN001
    tools = list(hospital_agent.tools.order_by("name")[:3])
    response = admin.post(
        url("agent-edit", hospital_agent.slug),
        form_data(
            hospital_agent,
            greeting="Hello, how can I help?",
            prompt="  You are a hospital receptionist.\r\n",
            tools=[t.pk for t in tools],
        ),
    )
    assert response.status_code == 302
    assert list(hospital_agent.prompts.values_list("version", flat=True)) == [1]
    hospital_agent.refresh_from_db()
    assert hospital_agent.greeting == "Hello, how can I help?"
    assert set(hospital_agent.tools.all()) == set(tools)
    assert "The prompt is unchanged." in admin.get(response["Location"]).content.decode()


def test_tools_of_another_scenario_are_refused(admin, hospital_agent) -> None:  # noqa: ANN001
    other = Scenario.objects.create(slug="shop", name="Shop", domain="orders")
    foreign = ToolSchema.objects.create(
        scenario=other, name="refund_order", description="Refund.", parameters={}
    )
    own = hospital_agent.tools.first()
    before = set(hospital_agent.tools.values_list("pk", flat=True))
    response = admin.post(
        url("agent-edit", hospital_agent.slug),
        form_data(hospital_agent, tools=[own.pk, foreign.pk]),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="id_tools_error"' in page
    assert "Not tools of the Hospital scenario: refund_order" in page
    assert set(hospital_agent.tools.values_list("pk", flat=True)) == before


def test_creating_an_agent(admin, admin_user, hospital_agent) -> None:  # noqa: ANN001
    response = admin.get(url("agent-create"))
    assert b'name="slug"' in response.content
    # A new agent gets every tool of its scenario unless told otherwise.
    (group,) = response.context["form"].tool_groups()
    assert len(group["tools"]) == 12 and all(item["ticked"] for item in group["tools"])
    data = form_data(hospital_agent, name="Night desk", prompt="You answer at night.")
    data["slug"] = "night-desk"
    response = admin.post(url("agent-create"), data)
    assert response.status_code == 302 and response["Location"] == url("agent-detail", "night-desk")
    agent = Agent.objects.get(slug="night-desk")
    assert not agent.published  # drafts until published
    assert agent.tools.count() == hospital_agent.tools.count()
    version = agent.prompts.get()
    assert (version.version, version.active, version.text) == (1, True, "You answer at night.")
    assert version.created_by == admin_user
    assert agent.publishable_key != hospital_agent.publishable_key
    # The slug must be unique.
    again = admin.post(url("agent-create"), data)
    assert again.status_code == 200 and b'id="id_slug_error"' in again.content


# The agent page ---------------------------------------------------------------------------


def test_embed_snippet_has_the_key_and_the_absolute_widget_url(admin, hospital_agent) -> None:  # noqa: ANN001
    page = admin.get(url("agent-detail", hospital_agent.slug)).content.decode()
    snippet = (
        '<script src="http://testserver/static/parley/widget.js" '
        f'data-agent="hospital-receptionist" data-key="{hospital_agent.publishable_key}" '
        "defer></script>"
    )
    assert f'<pre class="code" id="embed-snippet">{html.escape(snippet)}</pre>' in page
    assert 'id="copy-snippet"' in page
    assert "the widget will not work on any page" in page  # no allowed origins yet
    Agent.objects.filter(pk=hospital_agent.pk).update(allowed_origins="https://a.example")
    page = admin.get(url("agent-detail", hospital_agent.slug)).content.decode()
    assert "https://a.example" in page and "will not work on any page" not in page


def test_publish_toggles(admin, hospital_agent) -> None:  # noqa: ANN001
    publish = url("agent-publish", hospital_agent.slug)
    assert admin.get(publish).status_code == 405
    admin.post(publish, {"published": "0"})
    hospital_agent.refresh_from_db()
    assert not hospital_agent.published
    page = admin.get(url("agent-detail", hospital_agent.slug)).content.decode()
    assert "Draft" in page and ">Publish</button>" in page
    admin.post(publish, {"published": "1"})
    hospital_agent.refresh_from_db()
    assert hospital_agent.published
    assert b">Unpublish</button>" in admin.get(url("agent-detail", hospital_agent.slug)).content


# Prompt history ---------------------------------------------------------------------------


def test_rollback_makes_an_old_text_active_again(admin, admin_user, hospital_agent) -> None:  # noqa: ANN001
    prompt_version_create(agent=hospital_agent, text="A worse prompt.")
    response = admin.post(url("prompt-rollback", hospital_agent.slug, 1))
    assert response.status_code == 302
    active = hospital_agent.prompts.get(active=True)
    assert (active.version, active.text) == (3, "You are a hospital receptionist.")
    assert active.created_by == admin_user
    assert hospital_agent.prompts.count() == 3  # nothing is rewritten or lost
    page = admin.get(response["Location"]).content.decode()
    assert "v3 has the text of v1 and is active" in page
    assert "text of v1" in page
    # Rolling back to the text that is already active changes nothing.
    admin.post(url("prompt-rollback", hospital_agent.slug, 1))
    assert hospital_agent.prompts.count() == 3
    assert admin.get(url("prompt-rollback", hospital_agent.slug, 1)).status_code == 405


def test_diff_shows_changes_escaped(admin, hospital_agent) -> None:  # noqa: ANN001
    PromptVersion.objects.filter(agent=hospital_agent).update(
        text="Line one.\nSay <b>hello</b> & smile.\nLine three."
    )
    prompt_version_create(
        agent=hospital_agent, text="Line one.\nLine three.\n<script>alert(1)</script>"
    )
    response = admin.get(url("prompt-diff", hospital_agent.slug, 2))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script>alert(1)" not in page and "<b>hello" not in page
    assert (
        '<td class="diff-cell diff-new"><ins>&lt;script&gt;alert(1)&lt;/script&gt;</ins></td>'
        in page
    )
    assert "<del>Say &lt;b&gt;hello&lt;/b&gt; &amp; smile.</del>" in page
    assert 'class="diff-row diff-removed"' in page and 'class="diff-row diff-added"' in page
    assert "+1</span>" in page and "−1</span>" in page
    # Against a chosen version, and a version that does not exist.
    assert admin.get(url("prompt-diff", hospital_agent.slug, 1) + "?against=2").status_code == 200
    assert admin.get(url("prompt-diff", hospital_agent.slug, 2) + "?against=9").status_code == 404
    assert admin.get(url("prompt-diff", hospital_agent.slug, 7)).status_code == 404


# Test calls -------------------------------------------------------------------------------


def test_test_call_page_mounts_the_widget(admin, hospital_agent) -> None:  # noqa: ANN001
    Agent.objects.filter(pk=hospital_agent.pk).update(published=False)  # drafts too
    page = admin.get(url("agent-call", hospital_agent.slug)).content.decode()
    token_url = url("call-token", hospital_agent.slug)
    assert (
        '<script src="/static/parley/widget.js" data-agent="hospital-receptionist" '
        f'data-token-url="{token_url}" data-csrf="'
    ) in page
    assert 'data-mode="inline" data-target="#test-call" defer></script>' in page
    assert '<div id="test-call" class="widget-mount"></div>' in page
    assert 'id="latency-table"' in page and 'id="tool-calls"' in page


def test_call_token_is_accepted_by_the_websocket_check(admin, admin_user, hospital_agent) -> None:  # noqa: ANN001
    Agent.objects.filter(pk=hospital_agent.pk).update(published=False)
    response = admin.post(url("call-token", hospital_agent.slug))
    assert response.status_code == 200
    body = response.json()
    assert body["ws_url"] == "ws://testserver/ws/agents/hospital-receptionist/call"
    assert body["expires_in_s"] == 60
    grant = call_token_verify(body["token"], slug=hospital_agent.slug, origin="http://testserver")
    assert grant.purpose == "test" and grant.allows_unpublished
    assert grant.user_id == admin_user.pk
    assert admin.get(url("call-token", hospital_agent.slug)).status_code == 405


def test_call_token_needs_the_csrf_token(admin_user, hospital_agent) -> None:  # noqa: ANN001
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(url("call-token", hospital_agent.slug)).status_code == 403
    page = client.get(url("agent-call", hospital_agent.slug))
    csrf = page.context["csrf_token"]
    response = client.post(url("call-token", hospital_agent.slug), HTTP_X_CSRFTOKEN=str(csrf))
    assert response.status_code == 200 and response.json()["token"]


# Lists ------------------------------------------------------------------------------------


def conversation(agent: Agent, *, started: dt.datetime, ttfa: list[float | None], **kw):  # noqa: ANN003, ANN201
    conv = Conversation.objects.create(agent=agent, started_at=started, **kw)
    for index, value in enumerate(ttfa):
        Turn.objects.create(
            conversation=conv,
            index=index,
            started_at=started + dt.timedelta(seconds=index),
            ttfa_ms=value,
        )
    return conversation_summary_update(conversation=conv)


def test_agents_list_shows_todays_calls_and_median_ttfa(
    admin, hospital_agent, django_assert_max_num_queries
) -> None:  # noqa: ANN001
    now = timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    started = max(midnight + dt.timedelta(seconds=1), now - dt.timedelta(minutes=5))
    conversation(hospital_agent, started=started, ttfa=[None, 400.0, 900.0])
    conversation(hospital_agent, started=started, ttfa=[None, 500.0])
    conversation(hospital_agent, started=midnight - dt.timedelta(hours=2), ttfa=[None, 5000.0])
    idle = Agent.objects.create(
        slug="idle",
        name="Idle agent",
        scenario=hospital_agent.scenario,
        model_pool=hospital_agent.model_pool,
    )
    with django_assert_max_num_queries(8):  # session, user, groups + 2 for the agents
        response = admin.get(url("agents"))
    rows = {a.slug: a for a in response.context["overview"].agents}
    assert rows["hospital-receptionist"].calls_today == 2
    assert rows["hospital-receptionist"].ttfa_p50_today == 500.0  # median of 400, 500, 900
    assert rows[idle.slug].calls_today == 0 and rows[idle.slug].ttfa_p50_today is None
    page = response.content.decode()
    assert '<td class="num">500 ms</td>' in page
    assert '<td class="num">—</td>' in page
    assert "LLM simulator" in page and "Published" in page and "Draft" in page


def test_agents_list_empty_state(admin, analyst) -> None:  # noqa: ANN001
    page = admin.get(url("agents")).content.decode()
    assert "No agents yet" in page and url("agent-create") in page
    assert url("agent-create") not in analyst.get(url("agents")).content.decode()


def test_conversations_list_pages_and_links(admin, analyst, hospital_agent) -> None:  # noqa: ANN001
    start = timezone.now() - dt.timedelta(hours=3)
    for i in range(51):
        conversation(
            hospital_agent,
            started=start + dt.timedelta(minutes=i),
            ttfa=[None, 300.0, 700.0] if i == 50 else [],
            ended_at=start + dt.timedelta(minutes=i, seconds=65),
            status=Conversation.Status.ENDED,
        )
    response = admin.get(url("conversations"))
    assert response.status_code == 200
    page = response.context["page"]
    assert len(page.object_list) == 50 and page.paginator.num_pages == 2
    newest = page.object_list[0]
    assert newest.turn_count == 2 and newest.ttfa_p50_ms == 500.0  # caller turns 1 and 2
    text = response.content.decode()
    assert "1 min 05 s" in text and "500 ms" in text and "Older →" in text
    assert reverse("dashboard:conversation-detail", args=[newest.pk]) in text
    assert len(admin.get(url("conversations") + "?page=2").context["page"].object_list) == 1
    assert analyst.get(url("conversations")).status_code == 200
    refused = admin.get(url("conversations") + "?agent=nobody")
    assert refused.status_code == 200 and "cannot be applied" in refused.content.decode()


def test_nav_links_to_admin_pages_only_for_superusers(admin, analyst, hospital_agent) -> None:  # noqa: ANN001
    assert b"/admin/evaluations/evaluation/" in admin.get(url("agents")).content
    page = analyst.get(url("agents")).content
    assert b"/admin/evaluations/evaluation/" not in page and b"Admin site" not in page
    assert b'<span class="badge badge-role" title="Your dashboard role">Analyst</span>' in page
