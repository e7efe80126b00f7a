"""``manage.py scenario replay`` and ``scenario export`` on the order-management scenario.

The replay runs every task of ``tasks.json`` in its own sandbox through the voice agent's
tool path (ToolCall record, Celery task, validation) and must reproduce the reference: the
same ok/error per call, the same results and the same final state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from parley.tools.models import Environment, ToolCall
from parley.tools.orders.seed import DATA_DIR, orders_seed_load, orders_state_digest
from parley.tools.registry import tool_run

from .conftest import TASKS_FILE, fixture_json

pytestmark = pytest.mark.django_db(transaction=True)


def test_replay_of_every_task_matches_the_reference(
    tmp_path: Path, orders_seeded: dict[str, int], expected: dict[str, Any]
) -> None:
    out = tmp_path / "replay"
    call_command(
        "scenario",
        "replay",
        "--scenario",
        "orders",
        "--tasks",
        str(TASKS_FILE),
        "--out",
        str(out),
    )

    tasks = fixture_json("tasks.json")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == len(tasks) == 1
    assert summary["calls"] == sum(len(t["actions"]) for t in tasks)
    for task, reference in zip(tasks, expected["tasks"], strict=True):
        result = json.loads((out / f"{task['id']}.json").read_text())
        assert [c["name"] for c in result["calls"]] == [a["name"] for a in task["actions"]]
        assert [c["ok"] for c in result["calls"]] == reference["ok"], task["id"]
        for call, want in zip(result["calls"], reference["results"], strict=True):
            assert call["output"] == want, task["id"]
        assert orders_state_digest(state=result["state"]) == reference["final_digest"]
    assert ToolCall.objects.filter(scenario="orders", conversation=None).count() == 1
    assert not Environment.objects.filter(kind=Environment.Kind.SANDBOX).exists()


def test_export_writes_the_seed_file_format(tmp_path: Path, orders_seeded: dict[str, int]) -> None:
    call_command("scenario", "export", "--scenario", "orders", "--out", str(tmp_path))
    for seed_file in sorted(DATA_DIR.glob("*.json")):
        exported = json.loads((tmp_path / seed_file.name).read_text())
        original = json.loads(seed_file.read_text())
        assert exported == original, seed_file.name
        assert json.dumps(exported) == json.dumps(original)  # same record and key order
    assert isinstance(json.loads((tmp_path / "customers.json").read_text()), list)


def test_exported_files_load_back_as_the_same_state(
    tmp_path: Path, orders_seeded: dict[str, int]
) -> None:
    tool_run(scenario="orders", name="cancel_order", arguments={"order_id": "O1002"})
    tool_run(
        scenario="orders",
        name="request_refund",
        arguments={"order_id": "O1003", "refund_reason": "Damaged"},
    )
    tool_run(
        scenario="orders",
        name="return_order",
        arguments={"order_id": "O1003", "return_reason": "Damaged"},
    )
    digest = orders_state_digest()
    call_command("scenario", "export", "--scenario", "orders", "--out", str(tmp_path))

    orders_seed_load(data_dir=tmp_path, reset=True)

    assert orders_state_digest() == digest
    exported = json.loads((tmp_path / "orders.json").read_text())
    assert list(exported["O1003"])[-2:] == ["refund_reason", "return_reason"]
    assert "O1002" not in exported
