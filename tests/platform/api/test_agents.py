"""Agents and prompts through the API: reads, validated writes, prompt versions, publishing."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict

from parley.agents.models import Agent, PromptVersion
from parley.agents.services import agent_create, prompt_version_create
from parley.platform.dashboard.forms import AgentForm

pytestmark = pytest.mark.django_db


def new_agent_body(**overrides) -> dict:  # noqa: ANN003
    body = {
        "slug": "front-desk",
        "name": "Front desk",
        "scenario": "hospital",
        "model_pool": "simulator",
        "prompt": "You answer the phone for the hospital.",
    }
    body.update(overrides)
    return body


# Reads ------------------------------------------------------------------------------------


def test_detail_shows_the_whole_configuration(analyst, hospital_agent) -> None:  # noqa: ANN001
    hospital_agent.allowed_origins = "https://shop.example.com"
    hospital_agent.save()
    prompt_version_create(agent=hospital_agent, text="Be brief.")
    body = analyst.get(f"/api/agents/{hospital_agent.slug}/").json()
    assert body["slug"] == "hospital-receptionist"
    assert body["scenario"] == "hospital" and body["model_pool"] == "simulator"
    assert body["prompt"]["version"] == 2 and body["prompt"]["text"] == "Be brief."
    assert body["prompt"]["active"] is True
    assert body["tools"] == sorted(t.name for t in hospital_agent.tools.all())
    assert body["tools"]  # the hospital scenario's tools
    assert body["allowed_origins"] == ["https://shop.example.com"]
    assert body["endpointing_ms"] == 500 and body["vad_threshold"] == 0.5
    assert body["published"] is True and body["publishable_key"].startswith("pk_")
    assert set(AgentForm.Meta.fields) <= set(body)


def test_list_pages_in_constant_queries(
    analyst, hospital_agent, django_assert_max_num_queries
) -> None:
    # token, role, count, agents, tools, prompts: whatever the number of agents
    with django_assert_max_num_queries(6):
        one = analyst.get("/api/agents/").json()
    for n in range(4):
        agent_create(
            slug=f"agent-{n}",
            name=f"Agent {n}",
            scenario=hospital_agent.scenario,
            model_pool=hospital_agent.model_pool,
            prompt="Hello.",
        )
    with django_assert_max_num_queries(6):
        five = analyst.get("/api/agents/").json()
    assert one["count"] == 1 and five["count"] == 5
    row = next(r for r in five["results"] if r["slug"] == "hospital-receptionist")
    assert row["prompt_version"] == 1 and row["scenario"] == "hospital"
    page = analyst.get("/api/agents/?limit=2&offset=3").json()  # by name: Agent 0 … Hospital
    assert [r["slug"] for r in page["results"]] == ["agent-3", "hospital-receptionist"]


def test_unknown_agent_is_404(analyst, db) -> None:  # noqa: ANN001
    response = analyst.get("/api/agents/nobody/")
    assert response.status_code == 404 and "nobody" in response.json()["detail"]


# Writes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("endpointing_ms", 50),  # below 100
        ("endpointing_ms", 6000),  # above 5000
        ("vad_threshold", 0.99),
        ("max_tool_steps", 0),
        ("deepgram_utterance_end_ms", 500),  # Agent.clean: at least 1000, or 0
        ("stt_provider", "whisper"),
    ],
)
def test_the_api_refuses_what_the_dashboard_form_refuses(
    admin, hospital_agent, field, value
) -> None:
    """The same rules on both sides: the form is invalid on ``field``, the API says 400 on it."""
    data = model_to_dict(hospital_agent, fields=AgentForm.Meta.fields)
    data.update({"slug": "other", "prompt": "Hi.", "tools": [], field: value})
    form = AgentForm(data=data)
    assert not form.is_valid() and field in form.errors

    response = admin.post("/api/agents/", new_agent_body(**{field: value}), format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Agent.objects.filter(slug="front-desk").exists()


def test_create_validation_names_the_field(admin, hospital_agent) -> None:  # noqa: ANN001
    cases = {
        "slug": new_agent_body(slug=hospital_agent.slug),  # taken
        "scenario": new_agent_body(scenario="casino"),
        "model_pool": new_agent_body(model_pool="gpt-99"),
        "prompt": new_agent_body(prompt="   "),
        "allowed_origins": new_agent_body(allowed_origins=["https://ok.example.com/path"]),
        "tools": new_agent_body(tools=["get_doctor_info", "launch_rocket"]),
    }
    for field, body in cases.items():
        response = admin.post("/api/agents/", body, format="json")
        assert response.status_code == 400, field
        assert field in response.json(), (field, response.json())
    message = response.json()["tools"][0]
    assert "launch_rocket" in message and "get_doctor_info" not in message.split("(")[0]
    assert Agent.objects.count() == 1


def test_create_saves_the_agent_its_tools_and_prompt_v1(admin, admin_user, hospital_agent) -> None:  # noqa: ANN001
    tools = sorted(hospital_agent.tools.values_list("name", flat=True))[:2]
    response = admin.post(
        "/api/agents/",
        new_agent_body(
            endpointing_ms=700,
            tools=tools,
            allowed_origins=["HTTPS://Shop.Example.com:443"],
            stt_keyterms=["Lovelace", "cardiology"],
        ),
        format="json",
    )
    assert response.status_code == 201, response.json()
    agent = Agent.objects.get(slug="front-desk")
    assert agent.endpointing_ms == 700 and agent.published is False
    assert agent.allowed_origins == "https://shop.example.com"  # normalised by Agent.clean
    assert agent.stt_keyterms == "Lovelace\ncardiology"
    assert sorted(agent.tools.values_list("name", flat=True)) == tools
    prompt = agent.prompts.get()
    assert (prompt.version, prompt.active, prompt.created_by) == (1, True, admin_user)
    assert response.json()["prompt"]["version"] == 1
    assert response.json()["tools"] == tools


def test_create_without_tools_grants_every_tool_of_the_scenario(admin, hospital_agent) -> None:  # noqa: ANN001
    assert admin.post("/api/agents/", new_agent_body(), format="json").status_code == 201
    agent = Agent.objects.get(slug="front-desk")
    assert set(agent.tools.all()) == set(hospital_agent.scenario.tool_schemas.all())


def test_update_changes_settings_and_adds_a_prompt_version(
    admin, admin_user, hospital_agent
) -> None:
    url = f"/api/agents/{hospital_agent.slug}/"
    keep = sorted(hospital_agent.tools.values_list("name", flat=True))[:1]
    response = admin.patch(
        url,
        {
            "endpointing_ms": 800,
            "greeting": "Hospital, how can I help?",
            "prompt": "Be kind.",
            "tools": keep,
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    agent = Agent.objects.get(pk=hospital_agent.pk)
    assert agent.endpointing_ms == 800 and agent.greeting == "Hospital, how can I help?"
    assert agent.min_speech_ms == 250  # untouched
    assert list(agent.tools.values_list("name", flat=True)) == keep
    versions = list(agent.prompts.order_by("version").values_list("version", "active", "text"))
    assert versions == [(1, False, "You are a hospital receptionist."), (2, True, "Be kind.")]
    assert agent.prompts.get(version=2).created_by == admin_user
    assert response.json()["prompt"]["version"] == 2

    # The same prompt again (and no prompt at all): no new version.
    assert admin.patch(url, {"prompt": "Be kind.\r\n"}, format="json").status_code == 200
    assert admin.patch(url, {"tts_rate_wpm": 190}, format="json").status_code == 200
    assert agent.prompts.count() == 2
    assert Agent.objects.get(pk=agent.pk).tts_rate_wpm == 190


def test_update_refuses_bad_values_and_changes_nothing(admin, hospital_agent) -> None:  # noqa: ANN001
    url = f"/api/agents/{hospital_agent.slug}/"
    response = admin.patch(url, {"endpointing_ms": 50, "greeting": "new"}, format="json")
    assert response.status_code == 400 and "endpointing_ms" in response.json()
    response = admin.patch(url, {"deepgram_utterance_end_ms": 999}, format="json")
    assert response.status_code == 400 and "deepgram_utterance_end_ms" in response.json()
    response = admin.patch(url, {"slug": "renamed"}, format="json")
    assert response.status_code == 400 and "slug" in response.json()
    agent = Agent.objects.get(pk=hospital_agent.pk)
    assert (agent.endpointing_ms, agent.greeting, agent.slug) == (500, "", hospital_agent.slug)


def test_writes_take_json_only(admin, hospital_agent) -> None:  # noqa: ANN001
    response = admin.post(f"/api/agents/{hospital_agent.slug}/publish", {"other": "1"})
    assert response.status_code == 415  # a form post: it could not say published=false


def test_publish_and_unpublish(admin, hospital_agent) -> None:  # noqa: ANN001
    url = f"/api/agents/{hospital_agent.slug}/publish"
    response = admin.post(url, {"published": False}, format="json")
    assert response.status_code == 200 and response.json()["published"] is False
    assert Agent.objects.get(pk=hospital_agent.pk).published is False
    assert admin.post(url, {"published": True}, format="json").json()["published"] is True
    assert Agent.objects.get(pk=hospital_agent.pk).published is True
    response = admin.post(url, {}, format="json")
    assert response.status_code == 400 and "published" in response.json()


# Prompts ----------------------------------------------------------------------------------


def test_prompt_versions_newest_first(analyst, hospital_agent) -> None:  # noqa: ANN001
    prompt_version_create(agent=hospital_agent, text="Second.")
    body = analyst.get(f"/api/agents/{hospital_agent.slug}/prompts/").json()
    assert [(r["version"], r["active"]) for r in body["results"]] == [(2, True), (1, False)]


def test_new_prompt_becomes_active_and_the_same_text_is_not_a_new_version(
    admin, hospital_agent
) -> None:
    url = f"/api/agents/{hospital_agent.slug}/prompts/"
    response = admin.post(url, {"text": "Speak slowly."}, format="json")
    assert response.status_code == 201
    assert response.json()["version"] == 2 and response.json()["created_by"] == "ada"
    assert PromptVersion.objects.get(agent=hospital_agent, active=True).text == "Speak slowly."
    again = admin.post(url, {"text": "  Speak slowly.\n"}, format="json")
    assert again.status_code == 200 and again.json()["version"] == 2
    assert hospital_agent.prompts.count() == 2
    assert admin.post(url, {"text": ""}, format="json").status_code == 400


def test_rollback_adds_a_version_with_the_old_text(admin, hospital_agent) -> None:  # noqa: ANN001
    prompt_version_create(agent=hospital_agent, text="Second.")
    base = f"/api/agents/{hospital_agent.slug}/prompts"
    response = admin.post(f"{base}/1/rollback")
    assert response.status_code == 201
    assert response.json()["version"] == 3
    active = PromptVersion.objects.get(agent=hospital_agent, active=True)
    assert (active.version, active.text) == (3, "You are a hospital receptionist.")
    # v1's text is active now: a service refusal, as {"detail", "code"}
    refused = admin.post(f"{base}/1/rollback")
    assert refused.status_code == 400
    assert refused.json() == {"detail": "the text of v1 is already the active prompt", "code": None}
    assert admin.post(f"{base}/9/rollback").status_code == 404
    assert hospital_agent.prompts.count() == 3
