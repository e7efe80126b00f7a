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


def tasks_read(path: Path) -> list[dict[str, Any]]:
    """Tasks from a ``tasks.json``-format file. Raises ``ValueError`` with the reason when the
    file is not a list of objects with an ``id`` and a list of ``actions``."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read tasks from {path}: {exc}") from exc
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: expected a JSON list of tasks")
    for position, task in enumerate(tasks):
        if not isinstance(task, dict) or "id" not in task:
            raise ValueError(f"{path}: task #{position} has no 'id'")
        actions = task.get("actions")
        if not isinstance(actions, list) or not all(
            isinstance(a, dict) and isinstance(a.get("name"), str) for a in actions
        ):
            raise ValueError(f"{path}: task {task['id']!r} needs 'actions' of {{name, arguments}}")
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
    from parley.tools.tasks import tool_call_run

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
        calls = []
        with sandbox(scenario=scenario, label=f"replay {task_id}") as env:
            sandbox_ms = env.seed_ms
            for position, action in enumerate(task.get("actions", [])):
                arguments = action.get("arguments", {})
                record = tool_call_record(
                    scenario=scenario,
                    name=action["name"],
                    arguments_raw=json.dumps(arguments),
                    environment=env,
                    call_id=f"replay-{task_id}-{position}",
                )
                try:
                    outcome = tool_call_run.delay(record.id, scenario, None).get(
                        timeout=REPLAY_CALL_TIMEOUT_S, disable_sync_subtasks=False
                    )
                    ok, output = bool(outcome["ok"]), str(outcome["content"])
                except Exception as exc:  # the task itself failed: record it, go on
                    ok, output = False, f"Error: the tool could not be run ({exc})"
                calls.append(
                    {"name": action["name"], "arguments": arguments, "ok": ok, "output": output}
                )
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


def _seed_module(scenario: str) -> Any:
    from parley.tools.environments import DOMAIN_APPS

    if scenario not in DOMAIN_APPS:
        raise LookupError(f"unknown scenario {scenario!r}")
    return import_module(f"parley.tools.{scenario}.seed")


def _write_json(path: Path, content: Any) -> None:
    """Write atomically (a reader never sees half a file)."""
    atomic_write_text(path, json.dumps(content, indent=2, ensure_ascii=False) + "\n")
