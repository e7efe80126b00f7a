"""Tool safety: an agent calls only the tools it is granted, and no tool's answer to an unknown
identifier gives away another record (no "known patients are: ...").

Every tool of every scenario runs in a sandbox seeded with the scenario's data, with made-up
identifiers in every argument; its answer may repeat what the caller sent, never a name, id,
e-mail address or phone number of a seeded record.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import models, transaction

from parley.tools.environments import active_alias, domain_models, sandbox
from parley.tools.models import ToolCall
from parley.tools.orders.models import Order
from parley.tools.orders.seed import orders_seed_load
from parley.tools.registry import scenario_tools, tool_run
from parley.tools.services import tool_call_execute, tool_call_record

SCENARIOS = ("hospital", "hr", "orders")
#: Field names whose values identify a record (compared verbatim, 4+ characters).
IDENTIFYING = ("id", "name", "email", "phone", "code", "identifier")
#: Tools whose job is to answer without an identifier: what they say is not a lookup.
NOT_LOOKUPS = {
    ("hr", "calculate"),
    ("hr", "exit_conversation"),
    ("hr", "transfer_to_human_agents"),
    ("orders", "generate_order_report"),
}


def made_up_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """A value of the right type for every property, none of which names a seeded record."""
    args: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type")
        if "enum" in prop:
            args[name] = prop["enum"][0]
        elif kind == "integer":
            args[name] = 7
        elif kind == "number":
            args[name] = 12.5
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = ["zz-nope-item"]
        elif kind == "object":
            args[name] = {}
        else:
            args[name] = f"ZZ-NOPE-{name}"
    return args


def seeded_identifiers(scenario: str) -> set[str]:
    """Names, ids, e-mail addresses and phone numbers of every seeded record of ``scenario``
    in the active environment."""
    found: set[str] = set()
    for model in domain_models(scenario):
        fields = [
            f
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField)
            and (f.primary_key or any(word in f.name for word in IDENTIFYING))
        ]
        for row in model.objects.values_list(*[f.attname for f in fields]):
            found.update(str(v) for v in row if v and len(str(v)) >= 4)
    return found


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_tool_answer_to_a_made_up_identifier_names_another_record(scenario: str) -> None:
    with sandbox(scenario=scenario, label="tool-safety"):
        secrets = seeded_identifiers(scenario)
        assert len(secrets) > 20  # the seed is loaded
        tools = scenario_tools(scenario=scenario)
        assert tools
        errors = 0
        for name, spec in sorted(tools.items()):
            if (scenario, name) in NOT_LOOKUPS:
                continue
            args = made_up_arguments(spec.parameters)
            supplied = json.dumps(args)
            # Each tool sees the seed as it was (create_order would make the others succeed).
            with transaction.atomic(using=active_alias()):
                outcome = tool_run(scenario=scenario, name=name, arguments=args)
                transaction.set_rollback(True, using=active_alias())
            errors += not outcome.ok
            leaked = {s for s in secrets if s in outcome.content and s not in supplied}
            assert not leaked, (name, outcome.content[:500])
        assert errors >= len(tools) // 2  # made-up identifiers mostly fail


@pytest.mark.django_db
def test_an_agent_calls_only_its_granted_tools() -> None:
    """The runtime passes the agent's tool names as ``allowed``: a real tool of the scenario
    the agent was not granted is an error result and changes nothing."""
    orders_seed_load(reset=True)
    granted = ["get_order", "track_order"]
    call = tool_call_record(
        call_id="call_1",
        name="cancel_order",
        arguments_raw=json.dumps({"order_id": "O1033"}),
        scenario="orders",
        environment=None,
    )
    outcome = tool_call_execute(tool_call_id=call.id, scenario="orders", allowed=granted)
    assert not outcome.ok and "not available to this agent" in outcome.content
    assert Order.objects.filter(pk="O1033").exists()  # not cancelled
    stored = ToolCall.objects.get(pk=call.pk)
    assert stored.status == ToolCall.Status.ERROR and "not available" in stored.result
    # The same call with the tool granted does cancel: the refusal was the grant, not the data.
    allowed = tool_call_execute(
        tool_call_id=tool_call_record(
            call_id="call_2",
            name="cancel_order",
            arguments_raw=json.dumps({"order_id": "O1033"}),
            scenario="orders",
            environment=None,
        ).id,
        scenario="orders",
        allowed=[*granted, "cancel_order"],
    )
    assert allowed.ok and not Order.objects.filter(pk="O1033").exists()
