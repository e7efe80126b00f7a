"""Replay a scenario's tasks and export environments in the seed-file format.

A replay runs every task in a fresh sandbox (:func:`parley.tools.environments.sandbox`) and
calls each of its reference actions, in order, through the path the voice agent's tool calls
take: a ``ToolCall`` record, the ``tool_call_run`` Celery task (eager, or a worker when a
broker is configured), JSON-Schema validation in the registry, the tool. It writes
``<out>/<task id>.json`` = ``{"id", "calls": [{"name", "arguments", "ok", "output"}],
"state"}`` (``state``: the sandbox exported after the last call) and ``<out>/summary.json``.
Task files use the format of ``shared/scenarios/<scenario>/tasks.json``: ``id`` and
``actions`` of ``{"name", "arguments"}``; other fields are ignored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from importlib import import_module
from pathlib import Path
from typing import Any

from parley.conversations.reports import atomic_write_text
from parley.tools.environments import environment_activate, sandbox
from parley.tools.models import Environment
from parley.tools.services import tool_call_record

#: Seconds a replayed call may take (Celery worker round trip included).
REPLAY_CALL_TIMEOUT_S = 60.0

Progress = Callable[[int, int, str], None]


def scenario_state_export(
    *, scenario: str, environment: Environment | None = None
) -> dict[str, Any]:
    """The environment's data as ``{collection: content}`` in the seed-file format (live data
    when ``environment`` is None). Raises ``LookupError`` for an unknown scenario."""
    seed = _seed_module(scenario)
    with environment_activate(environment):
        return getattr(seed, f"{scenario}_state_export")()


def scenario_state_write(*, scenario: str, state: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write one JSON file per collection, named as in the scenario's ``data/`` folder."""
    seed = _seed_module(scenario)
    names: dict[str, str] = getattr(seed, "SEED_FILE_NAMES", {})
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for collection, content in state.items():
        path = out_dir / names.get(collection, f"{collection}.json")
        _write_json(path, content)
        paths.append(path)
    return paths


def scenario_tasks_path(scenario: str) -> Path:
    """The scenario's own tasks (``parley/tools/<scenario>/tasks.json``, copied from
    ``shared/scenarios/<scenario>/tasks.json``; Benchforce, Apache-2.0)."""
    return Path(__file__).resolve().parent / scenario / "tasks.json"


def tasks_read(path: Path) -> list[dict[str, Any]]:
    """Tasks from a ``tasks.json``-format file. Raises ``ValueError`` with the reason when the
    file is not a list of objects with an ``id`` and a list of ``actions``."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read tasks from {path}: {exc}") from exc
    return tasks_validate(tasks, source=str(path))


def tasks_validate(
    tasks: Any, *, source: str, need_instructions: bool = False
) -> list[dict[str, Any]]:
    """Check parsed tasks (rules of :func:`tasks_read`; evaluations also need each task's
    ``instructions`` text). Raises ``ValueError`` naming ``source`` and the task at fault."""
    if not isinstance(tasks, list):
        raise ValueError(f"{source}: expected a JSON list of tasks")
    seen: set[str] = set()
    for position, task in enumerate(tasks):
        if not isinstance(task, dict) or "id" not in task:
            raise ValueError(f"{source}: task #{position} has no 'id'")
        if str(task["id"]) in seen:
            raise ValueError(f"{source}: task id {task['id']!r} appears twice")
        seen.add(str(task["id"]))
        actions = task.get("actions")
        if not isinstance(actions, list) or not all(
            isinstance(a, dict) and isinstance(a.get("name"), str) for a in actions
        ):
            raise ValueError(
                f"{source}: task {task['id']!r} needs 'actions' of {{name, arguments}}"
            )
        instructions = task.get("instructions")
        if need_instructions and not (isinstance(instructions, str) and instructions.strip()):
            raise ValueError(f"{source}: task {task['id']!r} has no 'instructions' for the caller")
    return tasks


def scenario_replay(
    *,
    scenario: str,
    tasks: Iterable[dict[str, Any]],
    out_dir: Path,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay ``tasks`` (each in its own sandbox) and write the results; returns the summary.

    Raises ``LookupError`` for an unknown scenario. A failing call never stops the replay:
    it is recorded with ``ok: false`` and its error text as ``output``.
    """
    _seed_module(scenario)
    tasks = list(tasks)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = []
    for index, task in enumerate(tasks):
        task_id = str(task["id"])
        if progress:
            progress(index, len(tasks), task_id)
        task_started = time.perf_counter()
        with sandbox(scenario=scenario, label=f"replay {task_id}") as env:
            sandbox_ms = env.seed_ms
            calls = task_actions_replay(scenario=scenario, task=task, environment=env)
            state = scenario_state_export(scenario=scenario, environment=env)
        _write_json(out_dir / f"{task_id}.json", {"id": task_id, "calls": calls, "state": state})
        rows.append(
            {
                "id": task_id,
                "calls": len(calls),
                "ok": [c["ok"] for c in calls],
                "errors": sum(not c["ok"] for c in calls),
                "sandbox_ms": round(sandbox_ms or 0.0, 1),
                "elapsed_ms": round((time.perf_counter() - task_started) * 1000, 1),
            }
        )
    if progress:
        progress(len(tasks), len(tasks), "")
    summary = {
        "format": "parley-replay/v1",
        "scenario": scenario,
        "tasks": len(rows),
        "calls": sum(r["calls"] for r in rows),
        "error_calls": sum(r["errors"] for r in rows),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "results": rows,
    }
    _write_json(out_dir / "summary.json", summary)
    return summary


def task_actions_replay(
    *, scenario: str, task: dict[str, Any], environment: Environment, via_celery: bool = True
) -> list[dict[str, Any]]:
    """Call a task's actions in order against ``environment``; returns ``[{"name",
    "arguments", "ok", "output"}]``. Each call is a ``ToolCall`` record run by the
    ``tool_call_run`` Celery task (``via_celery=False``: the same function in this process,
    for a caller that is itself a Celery job and must not wait on another worker). A failing
    call is recorded with ``ok: false`` and never stops the replay."""
    from parley.tools.services import tool_call_execute
    from parley.tools.tasks import tool_call_run

    calls = []
    for position, action in enumerate(task.get("actions", [])):
        arguments = action.get("arguments", {})
        record = tool_call_record(
            scenario=scenario,
            name=action["name"],
            arguments_raw=json.dumps(arguments),
            environment=environment,
            call_id=f"replay-{task['id']}-{position}",
        )
        try:
            if via_celery:
                outcome = tool_call_run.delay(record.id, scenario, None).get(
                    timeout=REPLAY_CALL_TIMEOUT_S, disable_sync_subtasks=False
                )
                ok, output = bool(outcome["ok"]), str(outcome["content"])
            else:
                result = tool_call_execute(tool_call_id=record.id, scenario=scenario, allowed=None)
                ok, output = result.ok, result.content
        except Exception as exc:  # the task itself failed: record it, go on
            ok, output = False, f"Error: the tool could not be run ({exc})"
        calls.append({"name": action["name"], "arguments": arguments, "ok": ok, "output": output})
    return calls


def task_reference_state(*, scenario: str, task: dict[str, Any]) -> dict[str, Any]:
    """The scenario state a replay of the task's expected actions leaves (a fresh sandbox,
    dropped afterwards): what an evaluation run's final state is compared with."""
    with sandbox(scenario=scenario, label=f"reference {task['id']}") as env:
        task_actions_replay(scenario=scenario, task=task, environment=env, via_celery=False)
        return scenario_state_export(scenario=scenario, environment=env)


def _seed_module(scenario: str) -> Any:
    from parley.tools.environments import DOMAIN_APPS

    if scenario not in DOMAIN_APPS:
        raise LookupError(f"unknown scenario {scenario!r}")
    return import_module(f"parley.tools.{scenario}.seed")


def _write_json(path: Path, content: Any) -> None:
    """Write atomically (a reader never sees half a file)."""
    atomic_write_text(path, json.dumps(content, indent=2, ensure_ascii=False) + "\n")
