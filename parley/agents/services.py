"""Writes for the agents app: scenarios, agents, prompt versions."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max

from parley.agents.models import Agent, PromptVersion, Scenario
from parley.platform.errors import ApplicationError
from parley.platform.fleet.models import ModelPool
from parley.tools.models import ToolSchema
from parley.tools.registry import scenario_tools

#: Scenario domains shipped with Parley: slug → display name. Each is a package
#: ``parley.tools.<slug>`` with ``policy.md`` and a ``seed`` module.
SCENARIO_DOMAINS = {"hospital": "Hospital", "hr": "HR software", "orders": "Order management"}


@transaction.atomic
def scenario_install(*, slug: str) -> Scenario:
    """Create or update a scenario, its tool schemas from the registry, and seed its data.

    Raises ``ApplicationError`` for a domain Parley does not ship.
    """
    if slug not in SCENARIO_DOMAINS:
        raise ApplicationError(
            f"unknown scenario {slug!r}; available: {', '.join(sorted(SCENARIO_DOMAINS))}"
        )
    domain = import_module(f"parley.tools.{slug}")
    policy_path = Path(domain.__file__).parent / "policy.md"
    policy = policy_path.read_text(encoding="utf-8") if policy_path.exists() else ""
    scenario, _ = Scenario.objects.update_or_create(
        slug=slug, defaults={"name": SCENARIO_DOMAINS[slug], "domain": slug, "policy": policy}
    )
    for spec in scenario_tools(scenario=slug).values():
        ToolSchema.objects.update_or_create(
            scenario=scenario,
            name=spec.name,
            defaults={
                "description": spec.description,
                "parameters": spec.parameters,
                "side_effecting": spec.side_effecting,
            },
        )
    seed = import_module(f"parley.tools.{slug}.seed")
    getattr(seed, f"{slug}_seed_load")()
    return scenario


@transaction.atomic
def model_pool_simulator_ensure(*, slug: str = "simulator") -> ModelPool:
    """The built-in LLM simulator pool (the embedded default)."""
    pool, _ = ModelPool.objects.get_or_create(
        slug=slug,
        defaults={
            "name": "LLM simulator (built in, not a real model)",
            "kind": ModelPool.Kind.SIMULATOR,
            "model": "parley-simulator",
        },
    )
    return pool


@transaction.atomic
def prompt_version_create(
    *, agent: Agent, text: str, created_by: AbstractBaseUser | None = None, activate: bool = True
) -> PromptVersion:
    """Add the next prompt version; with ``activate`` it becomes the only active one."""
    current = agent.prompts.aggregate(v=Max("version"))["v"] or 0
    if activate:
        agent.prompts.filter(active=True).update(active=False)
    return PromptVersion.objects.create(
        agent=agent, version=current + 1, text=text, active=activate, created_by=created_by
    )


@transaction.atomic
def agent_create(
    *,
    slug: str,
    name: str,
    scenario: Scenario,
    model_pool: ModelPool,
    prompt: str,
    greeting: str = "",
    published: bool = True,
) -> Agent:
    """Create an agent granted all of its scenario's tools, with prompt version 1 active."""
    if Agent.objects.filter(slug=slug).exists():
        raise ApplicationError(f"an agent named {slug!r} already exists")
    agent = Agent.objects.create(
        slug=slug,
        name=name,
        scenario=scenario,
        model_pool=model_pool,
        greeting=greeting,
        published=published,
    )
    agent.tools.set(scenario.tool_schemas.all())
    prompt_version_create(agent=agent, text=prompt)
    return agent


def _prompt_text_normalise(text: str) -> str:
    """Browsers send textarea text with CRLF line breaks: compare and store it with LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


@transaction.atomic
def prompt_change(
    *, agent: Agent, text: str, created_by: AbstractBaseUser | None = None
) -> PromptVersion | None:
    """Make ``text`` the active prompt: a new version when it differs from the active one.

    Returns the new, active version, or ``None`` when the text (line breaks normalised to LF,
    surrounding whitespace stripped) equals the active prompt. Raises ``ApplicationError``
    for an empty prompt.
    """
    text = _prompt_text_normalise(text)
    if not text:
        raise ApplicationError("the prompt must not be empty")
    active = agent.prompts.filter(active=True).first()
    if active is not None and active.text == text:
        return None
    return prompt_version_create(agent=agent, text=text, created_by=created_by)


@transaction.atomic
def prompt_rollback(
    *, agent: Agent, version: int, by: AbstractBaseUser | None = None
) -> PromptVersion:
    """Roll the prompt back to an earlier version's text.

    History is append-only: the rollback adds a *new* version (created by ``by``) carrying
    ``version``'s text and makes it active, so the versions stay in time order and every
    conversation's ``prompt_version`` keeps pointing at the text it ran with. Raises
    ``ApplicationError`` when the version does not exist or its text is already active.
    """
    target = agent.prompts.filter(version=version).first()
    if target is None:
        raise ApplicationError(f"{agent.slug} has no prompt version {version}")
    created = prompt_change(agent=agent, text=target.text, created_by=by)
    if created is None:
        raise ApplicationError(f"the text of v{version} is already the active prompt")
    return created


@transaction.atomic
def agent_save(
    *,
    agent: Agent,
    tools: Iterable[ToolSchema],
    prompt: str,
    by: AbstractBaseUser | None = None,
) -> PromptVersion | None:
    """Save a new or changed agent (validated by the caller, e.g. a ModelForm), its tools and
    its prompt.

    ``tools`` replace the agent's tools; each must belong to the agent's scenario. The prompt
    goes through :func:`prompt_change`: a new active version only when the text changed.
    Returns that new version, or ``None`` when the prompt is unchanged. Raises
    ``ApplicationError`` for a tool of another scenario or an empty prompt.
    """
    tools = list(tools)
    foreign = sorted(t.name for t in tools if t.scenario_id != agent.scenario_id)
    if foreign:
        raise ApplicationError(
            f"tools not in the {agent.scenario} scenario: {', '.join(foreign)}",
            {"field": "tools"},
        )
    agent.save()
    agent.tools.set(tools)
    return prompt_change(agent=agent, text=prompt, created_by=by)


@transaction.atomic
def agent_publish(*, agent: Agent, published: bool) -> Agent:
    """Publish (callers of the widget and the WebSocket may reach it) or unpublish an agent.

    Unpublished agents still take dashboard test calls (call tokens of purpose ``test``).
    """
    if agent.published != published:
        agent.published = published
        agent.save(update_fields=["published", "updated_at"])
    return agent
