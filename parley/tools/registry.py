"""The tool registry: which Python function implements each scenario tool, and how to run one.

A scenario domain (``parley.tools.hospital``) registers its tools from its ``tools.json``
(OpenAI function schemas) and a mapping of tool name → function. A tool function takes the
validated arguments as keyword arguments and returns the string the LLM will read (usually
JSON text, or ``"Error: ..."``), exactly like the Benchforce reference tools.

:func:`tool_run` is what a Celery task calls: it parses and validates the arguments against
the tool's JSON Schema, runs the function inside a database transaction and turns every
failure into an error result, so that a bad argument never crashes the call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from django.db import transaction

from parley.tools.environments import active_alias

logger = logging.getLogger(__name__)

ToolFunction = Callable[..., str]


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool: its OpenAI schema parts, whether it writes, and its function."""

    scenario: str
    name: str
    description: str
    parameters: dict[str, Any]
    side_effecting: bool
    func: ToolFunction

    def as_openai_tool(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ToolOutcome:
    """The result of running a tool: ``content`` is what the LLM sees.

    ``ok`` is false when the arguments were invalid, the tool raised, or it returned an
    error (a string starting with ``"Error"`` or a JSON object with an ``"error"`` key —
    the same rule as the scenarios' ``expected.json`` ``ok`` lists).
    """

    ok: bool
    content: str
    error: str = ""


class UnknownToolError(LookupError):
    """No tool of that name is registered for the scenario."""


_REGISTRY: dict[str, dict[str, ToolSpec]] = {}
_KEYTERMS: dict[str, Callable[[], list[str]]] = {}

#: Deepgram accepts a bounded prompt of key terms; more terms dilute the boost anyway.
MAX_KEYTERMS = 100


def scenario_tools_register(
    *,
    scenario: str,
    schemas_path: Path,
    functions: Mapping[str, ToolFunction],
    side_effecting: Iterable[str],
) -> None:
    """Register a scenario's tools from its ``tools.json`` and its implementations.

    Raises ``ValueError`` if a schema has no function or a function no schema, so a domain
    can never ship a tool the LLM is offered but the platform cannot run.
    """
    schemas = json.loads(schemas_path.read_text())
    by_name = {entry["function"]["name"]: entry["function"] for entry in schemas}
    missing = sorted(set(by_name) - set(functions))
    extra = sorted(set(functions) - set(by_name))
    if missing or extra:
        raise ValueError(
            f"scenario {scenario!r}: tools without implementation {missing}, "
            f"implementations without schema {extra}"
        )
    writes = set(side_effecting)
    _REGISTRY[scenario] = {
        name: ToolSpec(
            scenario=scenario,
            name=name,
            description=schema.get("description", ""),
            parameters=schema.get("parameters", {"type": "object", "properties": {}}),
            side_effecting=name in writes,
            func=functions[name],
        )
        for name, schema in by_name.items()
    }


def scenario_keyterms_register(*, scenario: str, func: Callable[[], list[str]]) -> None:
    """Register the function listing a scenario's proper names (people, products...) that
    cloud STT should be told about (Deepgram ``keyterm``). It runs against the database."""
    _KEYTERMS[scenario] = func


def scenario_keyterms(*, scenario: str, extra: Iterable[str] = ()) -> list[str]:
    """``extra`` terms then the scenario's, de-duplicated (case-insensitive), in order, at
    most :data:`MAX_KEYTERMS`. Touches the ORM: call from a sync context."""
    func = _KEYTERMS.get(scenario)
    terms = [*extra, *(func() if func else [])]
    seen: set[str] = set()
    result: list[str] = []
    for term in terms:
        clean = " ".join(str(term).split())
        if clean and clean.lower() not in seen:
            seen.add(clean.lower())
            result.append(clean)
    return result[:MAX_KEYTERMS]


def scenario_tools(*, scenario: str) -> dict[str, ToolSpec]:
    """All tools registered for ``scenario`` by name (empty if none)."""
    return dict(_REGISTRY.get(scenario, {}))


def tool_get(*, scenario: str, name: str) -> ToolSpec:
    try:
        return _REGISTRY[scenario][name]
    except KeyError:
        raise UnknownToolError(f"unknown tool {name!r} for scenario {scenario!r}") from None


def result_is_error(content: str) -> bool:
    """The scenarios' rule for an error result: ``Error...`` text or JSON with ``error``."""
    if content.lstrip().startswith("Error"):
        return True
    try:
        parsed = json.loads(content)
    except (ValueError, TypeError):
        return False
    return isinstance(parsed, dict) and "error" in parsed


def tool_run(
    *,
    scenario: str,
    name: str,
    arguments: str | Mapping[str, Any],
    allowed: Iterable[str] | None = None,
) -> ToolOutcome:
    """Validate ``arguments`` (raw JSON text or a mapping) and run the tool.

    Never raises for a bad call: unknown or not-allowed tools, malformed JSON, schema
    violations and exceptions inside the tool all become ``ToolOutcome(ok=False, ...)``
    with an ``"Error: ..."`` content the LLM can act on. The tool runs in a transaction, so
    a tool that fails half-way leaves no partial writes.
    """
    if allowed is not None and name not in set(allowed):
        return _error(f"the tool {name!r} is not available to this agent")
    try:
        spec = tool_get(scenario=scenario, name=name)
    except UnknownToolError as exc:
        return _error(str(exc))
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return _error(f"arguments for {name} are not valid JSON ({exc.msg})")
    else:
        parsed = dict(arguments)
    if not isinstance(parsed, dict):
        return _error(f"arguments for {name} must be a JSON object")
    try:
        jsonschema.validate(parsed, spec.parameters)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return _error(
            f"invalid arguments for {name}: {exc.message}" + (f" (at {where})" if where else "")
        )
    # Only arguments the schema names reach the function (the schemas do not forbid extras).
    known = set(spec.parameters.get("properties", {}))
    kwargs = {k: v for k, v in parsed.items() if k in known}
    try:
        with transaction.atomic(using=active_alias()):
            content = spec.func(**kwargs)
    except Exception as exc:  # a tool bug must not end the call
        logger.exception("tool %s.%s raised", scenario, name)
        return _error(f"{name} failed: {type(exc).__name__}: {exc}")
    if not isinstance(content, str):
        content = json.dumps(content)
    return ToolOutcome(ok=not result_is_error(content), content=content)


def _error(message: str) -> ToolOutcome:
    return ToolOutcome(ok=False, content=f"Error: {message}", error=message)
