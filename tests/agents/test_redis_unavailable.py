"""What a call does when Redis (the Celery broker and result backend) is unreachable: the
tool call fails with a reason and leaves no running row, a lost result is read from the
ToolCall row, and a call still ends when its reports cannot be queued
(docs/operations.md#redis-restarts). The processes and a real restart:
tests/platform/test_redis_restart.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from parley.agents.runtime import CeleryToolRunner
from parley.agents.services import agent_create, model_pool_simulator_ensure, scenario_install
from parley.agents.voice.messages import ToolCallRequest
from parley.conversations.models import Conversation
from parley.conversations.services import conversation_end, conversations_reports_requeue
from parley.conversations.tasks import conversation_reports_write
from parley.tools.hospital.models import Appointment
from parley.tools.models import ToolCall
from parley.tools.services import tool_call_execute
from parley.tools.tasks import tool_call_run

pytestmark = pytest.mark.django_db(transaction=True)

BOOKING = {
    "patient_identifier": "Emily Davis",
    "doctor_identifier": "Dr. Sarah Johnson",
    "appointment_time": "3:00 PM",
    "appointment_date": "2024-03-04",
    "department": "Cardiology",
}
REFUSED = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def _conversation() -> Conversation:
    agent = agent_create(
        slug="redis-down",
        name="Redis down",
        scenario=scenario_install(slug="hospital"),
        model_pool=model_pool_simulator_ensure(),
        prompt="p",
    )
    return Conversation.objects.create(agent=agent, started_at=timezone.now())


def _book(conversation: Conversation) -> Any:
    runner = CeleryToolRunner(
        conversation_id=conversation.id,
        scenario="hospital",
        allowed=("schedule_appointment",),
        timeout_s=5,
    )
    call = ToolCallRequest(id="call_r1", name="schedule_appointment", arguments=json.dumps(BOOKING))
    return asyncio.run(runner.run(turn=1, call=call))


def _booked() -> int:
    return Appointment.objects.filter(
        appointment_date="2024-03-04", appointment_time="3:00 PM"
    ).count()


def test_a_tool_call_the_broker_cannot_take_fails_with_a_reason_and_no_effect(monkeypatch) -> None:  # noqa: ANN001
    def refuse(*_args: Any) -> None:
        raise REFUSED

    monkeypatch.setattr(tool_call_run, "delay", refuse)
    conversation = _conversation()
    result = _book(conversation)
    assert result.ok is False
    assert result.content == "Error: the tool could not be run (the task queue is unavailable)"
    (row,) = ToolCall.objects.filter(conversation=conversation)
    assert row.status == ToolCall.Status.ERROR and row.finished_at is not None
    assert row.error == "the tool could not be run (the task queue is unavailable)"
    assert _booked() == 0
    # A late delivery of the task (had the publish got through after all) does nothing.
    late = tool_call_execute(tool_call_id=row.id, scenario="hospital", allowed=None)
    assert late.ok is False and _booked() == 0


def test_a_result_lost_with_the_result_backend_is_read_from_the_tool_call_row(
    monkeypatch,  # noqa: ANN001
) -> None:
    class LostResult:
        """The worker ran the tool (committed), then Redis went away before the answer."""

        def __init__(self, tool_call_id: int) -> None:
            tool_call_execute(tool_call_id=tool_call_id, scenario="hospital", allowed=None)

        def get(self, **_kwargs: Any) -> None:
            raise RuntimeError("Retry limit exceeded while trying to reconnect")

    monkeypatch.setattr(tool_call_run, "delay", lambda tool_call_id, *_: LostResult(tool_call_id))
    conversation = _conversation()
    result = _book(conversation)
    (row,) = ToolCall.objects.filter(conversation=conversation)
    assert row.status == ToolCall.Status.OK
    assert result.ok is True and result.content == row.result
    assert "Appointment scheduled successfully" in result.content
    assert _booked() == 1


def test_a_call_ends_when_its_reports_cannot_be_queued_and_they_are_queued_later(
    monkeypatch,  # noqa: ANN001
) -> None:
    conversation = _conversation()
    with monkeypatch.context() as patched:
        patched.setattr(
            conversation_reports_write, "delay", lambda *_: (_ for _ in ()).throw(REFUSED)
        )
        ended = conversation_end(
            conversation_id=conversation.id, status=Conversation.Status.ENDED, reason="hung up"
        )
    assert ended.status == Conversation.Status.ENDED
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.ENDED and conversation.ended_at
    assert conversation.latency_report_path == ""
    # The recovery task's sweep queues them again (the broker is back; tests run it eagerly).
    assert conversations_reports_requeue(older_than_s=0) == [conversation.id]
    conversation.refresh_from_db()
    assert conversation.latency_report_path.endswith("latency.json")
    assert conversations_reports_requeue(older_than_s=0) == []
