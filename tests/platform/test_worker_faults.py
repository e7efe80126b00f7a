"""A Celery worker killed while a side-effecting tool runs: the task comes back, and the tool's
effect happens exactly once (docs/operations.md#faults).

A real ``celery -A parley.platform worker`` over the test Redis; the hospital tools are slowed
inside their transaction by the test-only hook of parley/testing/faults.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from django.utils import timezone

from parley.agents.services import agent_create, model_pool_simulator_ensure, scenario_install
from parley.conversations.models import Conversation
from parley.platform.celery import app as celery_app
from parley.tools.hospital.models import Appointment
from parley.tools.models import ToolCall
from parley.tools.services import tool_call_abandon, tool_call_execute, tool_call_start
from parley.tools.tasks import tool_call_run
from tests.platform.process_support import celery_worker, redis_url, stop, wait_for

pytestmark = pytest.mark.redis

ARGUMENTS = {
    "patient_identifier": "Emily Davis",
    "doctor_identifier": "Dr. Sarah Johnson",
    "appointment_time": "10:00 AM",
    "appointment_date": "2024-01-25",
    "department": "Cardiology",
}


def _tool_call(call_id: str) -> ToolCall:
    scenario = scenario_install(slug="hospital")
    agent = agent_create(
        slug=f"worker-{call_id}",
        name="w",
        scenario=scenario,
        model_pool=model_pool_simulator_ensure(),
        prompt="p",
    )
    conversation = Conversation.objects.create(agent=agent, started_at=timezone.now())
    return tool_call_start(
        conversation_id=conversation.id,
        turn_index=1,
        call_id=call_id,
        name="schedule_appointment",
        arguments_raw=json.dumps(ARGUMENTS),
    )


def _appointments() -> int:
    return Appointment.objects.filter(
        patient__name="Emily Davis", appointment_date="2024-01-25", appointment_time="10:00 AM"
    ).count()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_tool_leaves_nothing_and_the_redelivered_task_writes_once(
    tmp_path: Path,
) -> None:
    url = redis_url()
    redis.Redis.from_url(url).flushdb()  # no task of an earlier run may be waiting
    call = _tool_call("call_kill1")
    assert _appointments() == 0
    celery_app.conf.update(task_always_eager=False, broker_url=url, result_backend=url)
    mark, log = tmp_path / "tool-running", tmp_path / "workers.log"
    first = second = None
    try:
        first = celery_worker(
            log=log,
            name="doomed",
            PARLEY_TEST_TOOL_DELAY_S="60",
            PARLEY_TEST_TOOL_MARK=str(mark),
        )
        pending = tool_call_run.delay(call.id, "hospital", None)
        wait_for(mark.exists, timeout_s=30, what="the tool to run in the first worker", log=log)
        # The tool has written its row, uncommitted, and sleeps inside the transaction.
        assert _appointments() == 0
        # The voice loop's time-out cannot fail a call a worker is running (the row is locked).
        assert tool_call_abandon(tool_call_id=call.id, reason="timed out") is None
        stop(first)  # SIGKILL: no acknowledgement, the connection (and transaction) dies
        assert _appointments() == 0
        call.refresh_from_db()
        assert call.status == ToolCall.Status.RUNNING
        # A healthy worker that takes unacknowledged tasks back after 1 s.
        second = celery_worker(log=log, name="healthy", CELERY_VISIBILITY_TIMEOUT_S="1")
        outcome = pending.get(timeout=40)
    finally:
        stop(first)
        stop(second)
        celery_app.conf.update(task_always_eager=True)
    assert outcome["ok"] is True, outcome
    assert "Appointment scheduled successfully" in outcome["content"]
    assert _appointments() == 1
    call.refresh_from_db()
    assert call.status == ToolCall.Status.OK
    assert call.result == outcome["content"] and call.finished_at is not None
    # A further delivery of the same tool call returns the stored result and writes nothing.
    again = tool_call_execute(tool_call_id=call.id, scenario="hospital", allowed=None)
    assert (again.ok, again.content) == (True, call.result)
    assert _appointments() == 1


@pytest.mark.django_db(transaction=True)
def test_a_tool_call_abandoned_by_the_voice_loop_is_never_run_by_a_late_delivery() -> None:
    call = _tool_call("call_late1")
    abandoned = tool_call_abandon(tool_call_id=call.id, reason="the tool did not answer in 20 s")
    assert abandoned is not None and abandoned.status == ToolCall.Status.ERROR
    late = tool_call_execute(tool_call_id=call.id, scenario="hospital", allowed=None)
    assert late.ok is False and late.content == "Error: the tool did not answer in 20 s"
    assert _appointments() == 0
