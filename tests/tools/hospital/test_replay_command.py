"""``manage.py scenario replay`` and ``scenario export`` on the hospital scenario.

The replay runs every task of ``tasks.json`` in its own sandbox through the voice agent's
tool path (ToolCall record, Celery task, validation) and must reproduce the reference:
the same ok/error per call, the same results and the same final state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from parley.tools.hospital.seed import DATA_DIR, hospital_state_digest
from parley.tools.models import Environment, ToolCall

from .conftest import TASKS_FILE, fixture_json

pytestmark = pytest.mark.django_db(transaction=True)


def test_replay_of_every_task_matches_the_reference(
    tmp_path: Path, hospital_seeded: dict[str, int], frozen_today: object, expected: dict[str, Any]
) -> None:
    out = tmp_path / "replay"
    call_command(
        "scenario",
        "replay",
        "--scenario",
        "hospital",
        "--tasks",
        str(TASKS_FILE),
        "--out",
        str(out),
    )

    tasks = fixture_json("tasks.json")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == len(tasks) == 64
    assert summary["calls"] == sum(len(t["actions"]) for t in tasks)
    matched = 0
    for task, reference in zip(tasks, expected["tasks"], strict=True):
        result = json.loads((out / f"{task['id']}.json").read_text())
        assert result["id"] == task["id"]
        assert [c["name"] for c in result["calls"]] == [a["name"] for a in task["actions"]]
        assert [c["ok"] for c in result["calls"]] == reference["ok"], task["id"]
        for call, want, raised in zip(
            result["calls"], reference["results"], reference["exceptions"], strict=True
        ):
            if raised is None:
                assert call["output"] == want, task["id"]
        assert hospital_state_digest(state=result["state"]) == reference["final_digest"]
        matched += 1
    assert matched == 64
    # Every call went through the recorded path, and no sandbox outlived the replay.
    assert (
        ToolCall.objects.filter(scenario="hospital", conversation=None).count()
        == (summary["calls"])
    )
    assert not Environment.objects.filter(kind=Environment.Kind.SANDBOX).exists()


def test_export_writes_the_seed_file_format(
    tmp_path: Path, hospital_seeded: dict[str, int]
) -> None:
    call_command("scenario", "export", "--scenario", "hospital", "--out", str(tmp_path))
    for seed_file in sorted(DATA_DIR.glob("*.json")):
        exported = json.loads((tmp_path / seed_file.name).read_text())
        original = json.loads(seed_file.read_text())
        assert exported == original, seed_file.name
        assert list(exported) == list(original)  # same record order


def _export_a_sandbox_with_a_cancellation(out: Path) -> str:
    """Cancel A3001 in a fresh sandbox, export the sandbox to ``out``; returns its digest."""
    from parley.tools.environments import sandbox
    from parley.tools.registry import tool_run

    with sandbox(scenario="hospital") as env:
        outcome = tool_run(
            scenario="hospital",
            name="cancel_appointment",
            arguments={
                "patient_identifier": "P2001",
                "doctor_identifier": "D1002",
                "appointment_date": "2024-01-15",
                "appointment_time": "9:00 AM",
            },
        )
        assert outcome.ok
        call_command(
            "scenario",
            "export",
            "--scenario",
            "hospital",
            "--environment",
            str(env.pk),
            "--out",
            str(out),
        )
        return hospital_state_digest()


def test_export_of_a_sandbox_shows_its_own_changes(
    tmp_path: Path, hospital_seeded: dict[str, int]
) -> None:
    _export_a_sandbox_with_a_cancellation(tmp_path / "sandbox")
    call_command("scenario", "export", "--scenario", "hospital", "--out", str(tmp_path / "live"))
    sandbox_appts = json.loads((tmp_path / "sandbox/appointments.json").read_text())
    live_appts = json.loads((tmp_path / "live/appointments.json").read_text())
    assert sandbox_appts["A3001"]["status"] == "cancelled"
    assert live_appts["A3001"]["status"] == "scheduled"


def test_an_export_loads_back_as_the_live_data(
    tmp_path: Path, hospital_seeded: dict[str, int]
) -> None:
    from parley.tools.hospital.models import Appointment

    sandbox_digest = _export_a_sandbox_with_a_cancellation(tmp_path / "state")
    call_command("scenario", "load", "--scenario", "hospital", "--from", str(tmp_path / "state"))
    assert Appointment.objects.get(pk="A3001").status == "cancelled"
    assert hospital_state_digest() == sandbox_digest  # the round trip is exact

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "patients.json").write_text("[]")
    with pytest.raises(CommandError, match="cannot load"):
        call_command("scenario", "load", "--scenario", "hospital", "--from", str(broken))
    assert hospital_state_digest() == sandbox_digest  # rolled back: nothing lost


def test_bad_task_files_and_unknown_environments_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "tasks.json"
    bad.write_text('[{"id": "t1", "actions": "cancel everything"}]')
    with pytest.raises(CommandError, match="needs 'actions'"):
        call_command(
            "scenario",
            "replay",
            "--scenario",
            "hospital",
            "--tasks",
            str(bad),
            "--out",
            str(tmp_path / "out"),
        )
    with pytest.raises(CommandError, match="no environment"):
        call_command(
            "scenario",
            "export",
            "--scenario",
            "hospital",
            "--environment",
            "not-a-uuid",
            "--out",
            str(tmp_path / "x"),
        )
