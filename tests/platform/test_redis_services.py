"""The real Redis server: the channel layer and a real Celery worker running a tool call.

`make test` sets REDIS_URL; these tests fail (never skip) when it is missing.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from celery.contrib.testing.worker import start_worker
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from parley.agents.services import agent_create, model_pool_simulator_ensure, scenario_install
from parley.conversations.models import Conversation
from parley.platform.celery import app as celery_app
from parley.tools.hospital.models import Patient
from parley.tools.models import ToolCall
from parley.tools.services import tool_call_start
from parley.tools.tasks import tool_call_run

pytestmark = pytest.mark.redis


def test_the_suite_runs_with_test_settings_and_eager_celery() -> None:
    """`make test` must not inherit the development settings from the environment."""
    assert settings.SETTINGS_MODULE == "parley.platform.settings.test"
    assert celery_app.conf.task_always_eager is True


def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    assert url, "REDIS_URL must point at the test Redis server (make test sets it)"
    return url


@pytest.mark.asyncio
async def test_channel_layer_round_trip_over_redis_outlives_the_socket_timeout() -> None:
    redis_url()
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    layer = get_channel_layer()
    channel = await layer.new_channel()
    # A receive that blocks longer than redis-py's default 5 s socket timeout must not fail.
    receiver = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(6)
    await layer.send(channel, {"type": "call.note", "text": "hello"})
    message = await asyncio.wait_for(receiver, 5)
    assert message == {"type": "call.note", "text": "hello"}
    await layer.flush()
    await layer.close_pools()


@pytest.mark.django_db(transaction=True)
def test_tool_call_runs_on_a_real_celery_worker_over_redis() -> None:
    url = redis_url()
    celery_app.conf.update(
        task_always_eager=False,
        broker_url=url,
        result_backend=url,
        broker_connection_retry_on_startup=True,
    )
    try:
        scenario = scenario_install(slug="hospital")
        agent = agent_create(
            slug="worker-test",
            name="w",
            scenario=scenario,
            model_pool=model_pool_simulator_ensure(),
            prompt="p",
        )
        conversation = Conversation.objects.create(agent=agent, started_at=timezone.now())
        call = tool_call_start(
            conversation_id=conversation.id,
            turn_index=1,
            call_id="call_w1",
            name="update_emergency_contact",
            arguments_raw=json.dumps(
                {
                    "patient_identifier": "P2001",
                    "contact_name": "Ann Smith",
                    "contact_phone": "555-0000",
                }
            ),
        )
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            async_result = tool_call_run.delay(call.id, "hospital", None)
            result = async_result.get(timeout=30)
        assert result["ok"] is True
        call.refresh_from_db()
        assert call.status == ToolCall.Status.OK and call.duration_ms is not None
        assert call.celery_task_id == async_result.id
        patient = Patient.objects.get(pk="P2001")
        assert (patient.emergency_contact, patient.emergency_phone) == ("Ann Smith", "555-0000")
    finally:
        celery_app.conf.update(task_always_eager=True)
