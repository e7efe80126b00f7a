"""Scores of an evaluation run: did the agent do what the task expected?

Pure functions over plain data (no Django), so hand-made logs can test them:

- **action match**: every expected action is matched by a distinct logged tool call with the
  same name and matching arguments (:func:`arguments_match`: strings compared after trimming
  and case-folding, ``"*"`` matches anything, numbers by value, objects key by key, lists
  item by item). Extra calls the agent made do not fail the match; they are counted.
- **state match**: the run's final scenario state equals the state a replay of the expected
  actions produced (compared as canonical JSON).
- :func:`scores_aggregate` sums runs into counts (never only percentages).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from parley.agents.voice.metrics import percentile

WILDCARD = "*"


def _norm(value: str) -> str:
    return value.strip().casefold()


def arguments_match(expected: Any, actual: Any) -> bool:
    """Whether ``actual`` satisfies ``expected`` (rules in the module docstring)."""
    if isinstance(expected, str) and expected == WILDCARD:
        return True
    if isinstance(expected, str):
        return isinstance(actual, str) and _norm(expected) == _norm(actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and expected == actual
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return False
        required = {k for k, v in expected.items() if v != WILDCARD}
        if not required <= set(actual) or not set(actual) <= set(expected):
            return False
        return all(arguments_match(expected[k], actual[k]) for k in actual)
    if isinstance(expected, Sequence):
        return (
            isinstance(actual, Sequence)
            and not isinstance(actual, str)
            and len(expected) == len(actual)
            and all(arguments_match(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return expected == actual


@dataclass(frozen=True)
class ActionMatch:
    """``matched[i]``: expected action i was matched (by call ``by_call[i]``)."""

    matched: tuple[bool, ...]
    by_call: tuple[int | None, ...]
    extra_calls: int

    @property
    def passed(self) -> bool:
        return all(self.matched)


def action_match(
    expected: Sequence[Mapping[str, Any]], calls: Sequence[Mapping[str, Any]]
) -> ActionMatch:
    """Match expected ``{name, arguments}`` actions to logged ``{name, arguments}`` calls.

    Each call matches at most one action; actions are taken in order, each by the earliest
    unused matching call. ``arguments`` of a call may be a JSON string (as the LLM wrote it).
    """
    used: set[int] = set()
    matched: list[bool] = []
    by_call: list[int | None] = []
    for action in expected:
        found = None
        for index, call in enumerate(calls):
            if index in used or call.get("name") != action.get("name"):
                continue
            if arguments_match(action.get("arguments", {}), _arguments(call)):
                found = index
                break
        if found is not None:
            used.add(found)
        matched.append(found is not None)
        by_call.append(found)
    return ActionMatch(tuple(matched), tuple(by_call), extra_calls=len(calls) - len(used))


def _arguments(call: Mapping[str, Any]) -> Any:
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        try:
            return json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return None
    return arguments


def state_match(final_state: Mapping[str, Any], reference_state: Mapping[str, Any]) -> bool:
    """Whether two scenario states are equal (canonical JSON: key order does not matter)."""
    return json.dumps(final_state, sort_keys=True) == json.dumps(reference_state, sort_keys=True)


@dataclass
class RunScore:
    """The scores of one run of one task."""

    task_id: str
    repetition: int
    action_match: bool
    actions_matched: int
    actions_expected: int
    extra_calls: int
    state_match: bool | None  # None: not measured (no sandbox state)
    turns: int = 0
    tokens: int = 0
    ttfa_ms: list[float] = field(default_factory=list)  # voice mode: per-run TTFA p50
    ttft_ms: list[float] = field(default_factory=list)  # the agent LLM's TTFT p50
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scores_aggregate(runs: Iterable[RunScore]) -> dict[str, Any]:
    """Counts over runs: ``{"runs", "tasks", "action_match": {"passed", "of"}, ...}``."""
    runs = list(runs)
    measured = [r for r in runs if r.state_match is not None]

    def share(passed: int, of: int) -> dict[str, Any]:
        return {"passed": passed, "of": of, "rate": round(passed / of, 3) if of else None}

    return {
        "runs": len(runs),
        "tasks": len({r.task_id for r in runs}),
        "action_match": share(sum(r.action_match for r in runs), len(runs)),
        "actions": share(
            sum(r.actions_matched for r in runs), sum(r.actions_expected for r in runs)
        ),
        "state_match": share(sum(bool(r.state_match) for r in measured), len(measured)),
        "both": share(sum(r.action_match and bool(r.state_match) for r in measured), len(measured)),
        "errors": sum(bool(r.error) for r in runs),
        "extra_calls": sum(r.extra_calls for r in runs),
        "turns": sum(r.turns for r in runs),
        "tokens": sum(r.tokens for r in runs),
        "ttfa_ms": spread(v for r in runs for v in r.ttfa_ms),
        "ttft_ms": spread(v for r in runs for v in r.ttft_ms),
    }


def spread(values: Iterable[float]) -> dict[str, Any]:
    """``{"n", "p50", "max"}`` of some latencies (ms; p50 rounded to 0.1)."""
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(percentile(ordered, 50), 1) if ordered else None,
        "max": ordered[-1] if ordered else None,
    }
