"""Scenario environments: sandboxes of the hospital data, isolated from live and each other."""

from __future__ import annotations

import pytest
from django.db import connections

from parley.tools.environments import (
    active_alias,
    environment_activate,
    environment_sandbox_create,
    environment_sandbox_drop,
    sandbox,
)
from parley.tools.hospital.models import Appointment, Patient
from parley.tools.hospital.seed import (
    hospital_seed_load,
    hospital_state_digest,
    hospital_state_export,
)
from parley.tools.models import Environment
from parley.tools.registry import tool_run

pytestmark = pytest.mark.django_db(transaction=True)

CANCEL = {
    "patient_identifier": "P2001",
    "doctor_identifier": "D1002",
    "appointment_date": "2024-01-15",
    "appointment_time": "9:00 AM",
}


def _storage_exists(alias: str) -> bool:
    live = connections["default"]
    if live.vendor == "postgresql":
        with live.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [alias])
            return cursor.fetchone() is not None
    from parley.tools.environments import _sqlite_path

    return _sqlite_path(alias).exists()


def test_a_sandbox_starts_from_the_seed_and_writes_stay_inside_it() -> None:
    hospital_seed_load()
    live_digest = hospital_state_digest()
    with sandbox(scenario="hospital", label="test") as env:
        assert active_alias() == env.alias != "default"
        assert hospital_state_digest() == live_digest  # a fresh copy of the seed
        outcome = tool_run(scenario="hospital", name="cancel_appointment", arguments=CANCEL)
        assert outcome.ok, outcome.content
        assert Appointment.objects.get(pk="A3001").status == "cancelled"
        sandbox_digest = hospital_state_digest()
        with sandbox(scenario="hospital") as other:
            assert active_alias() == other.alias
            assert Appointment.objects.get(pk="A3001").status != "cancelled"
        assert active_alias() == env.alias
        assert hospital_state_digest() == sandbox_digest
    assert active_alias() == "default"
    assert hospital_state_digest() == live_digest
    assert Appointment.objects.get(pk="A3001").status != "cancelled"


def test_a_dropped_sandbox_leaves_nothing_behind() -> None:
    env = environment_sandbox_create(scenario="hospital")
    alias = env.alias
    assert env.seed_ms is not None and env.seed_ms > 0
    assert _storage_exists(alias)
    with environment_activate(env):
        assert Patient.objects.count() == len(hospital_state_export()["patients"])
    environment_sandbox_drop(env)
    assert not _storage_exists(alias)
    assert not Environment.objects.filter(pk=env.pk).exists()
    assert not hasattr(connections._connections, alias)


def test_a_failing_tool_rolls_back_inside_the_sandbox() -> None:
    with sandbox(scenario="hospital"):
        before = hospital_state_digest()
        outcome = tool_run(scenario="hospital", name="cancel_appointment", arguments={})
        assert not outcome.ok
        assert hospital_state_digest() == before


def test_unknown_scenarios_and_live_drops_are_refused() -> None:
    with pytest.raises(LookupError, match="unknown scenario"):
        environment_sandbox_create(scenario="bakery")
    live = Environment.objects.create(scenario="hospital", kind=Environment.Kind.LIVE)
    with pytest.raises(ValueError, match="only sandboxes"):
        environment_sandbox_drop(live)


def test_a_thread_that_touched_a_sandbox_keeps_no_connection_to_it() -> None:
    # Tool calls run on worker threads; each activation must close the connection it opened,
    # or a long evaluation leaves one database connection per sandbox per thread.
    import threading

    with sandbox(scenario="hospital", label="threads") as env:
        leftovers: list[bool] = []

        def worker() -> None:
            with environment_activate(env):
                assert Patient.objects.count() > 0
            leftovers.append(hasattr(connections._connections, env.alias))

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert leftovers == [False]
        # The thread that created the sandbox keeps its connection until the sandbox is dropped.
        assert hasattr(connections._connections, env.alias)
    assert not hasattr(connections._connections, env.alias)
