"""The fleet's Django side: servers in the database, active health checks, routers refreshed
from them, /metrics, and a real call routed over simulator processes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from channels.db import database_sync_to_async

from parley.agents.models import Agent
from parley.conversations.models import Turn
from parley.platform.fleet.models import LLMServer, ModelPool
from parley.platform.fleet.router import COOLDOWN, HEALTHY
from parley.platform.fleet.services import fleet_health_check, router_refresh, server_probe
from parley.platform.fleet.tasks import fleet_health_check_all
from parley.testing.simulators import SimulatorProcess, fleet_start
from tests.agents.conftest import turn_ended, ws_call
from tests.conftest import user_with

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimulatorProcess]]:
    processes = fleet_start({"vllm-1": [], "vllm-2": []}, ttft_ms=20, itl_ms=2)
    yield processes
    for process in processes.values():
        process.stop()


@pytest.fixture
def pool(sims, settings) -> ModelPool:  # noqa: ANN001
    settings.FLEET_FAILURE_THRESHOLD = 2
    settings.FLEET_COOLDOWN_S = 30.0
    settings.FLEET_REFRESH_S = 0.0
    for process in sims.values():
        process.faults(error_rate=0.0, unhealthy=False)
    pool = ModelPool.objects.create(
        slug="fleet",
        name="fleet",
        kind=ModelPool.Kind.OPENAI_COMPATIBLE,
        model="parley-simulator",
        ttft_deadline_ms=800,
    )
    for name, process in sims.items():
        LLMServer.objects.create(pool=pool, name=name, base_url=process.base_url)
    return pool


def test_active_checks_cool_an_unhealthy_server_down_and_bring_it_back(pool, sims) -> None:  # noqa: ANN001
    sims["vllm-2"].faults(unhealthy=True)
    assert fleet_health_check_all.delay().get() == {
        "fleet/vllm-1": HEALTHY,
        "fleet/vllm-2": HEALTHY,  # one failure is below the threshold
    }
    fleet_health_check(pool_id=pool.pk)
    server = LLMServer.objects.get(name="vllm-2")
    assert server.health == COOLDOWN and server.consecutive_failures == 2
    assert server.last_error == "/health answered 503" and server.cooldown_until is not None

    sims["vllm-2"].faults(unhealthy=False)
    fleet_health_check(pool_id=pool.pk)
    server.refresh_from_db()
    assert (server.health, server.consecutive_failures, server.last_error) == (HEALTHY, 0, "")


def test_a_server_that_does_not_serve_the_pools_model_fails_its_check(pool) -> None:  # noqa: ANN001
    ModelPool.objects.filter(pk=pool.pk).update(model="qwen2.5-7b-instruct")
    server = LLMServer.objects.select_related("pool").get(name="vllm-1")
    assert "model 'qwen2.5-7b-instruct' not served" in server_probe(server)
    gone = LLMServer(pool=pool, name="x", base_url="http://127.0.0.1:9/v1")
    assert server_probe(gone).startswith("ConnectError")


async def test_the_router_follows_the_database(pool, sims) -> None:  # noqa: ANN001
    router = await router_refresh(pool.pk, force=True)
    assert sorted(s.name for s in router.servers) == ["vllm-1", "vllm-2"]
    sims["vllm-1"].faults(unhealthy=True)
    for _ in range(2):
        await database_sync_to_async(fleet_health_check)(pool_id=pool.pk)
    await router_refresh(pool.pk, force=True)
    by_name = {s.name: s for s in router.servers}
    assert by_name["vllm-1"].health == COOLDOWN  # an active check result reached the router
    assert router.choose("conversation").server.name == "vllm-2"
    # Admin edits too; and the router's live snapshot lands in the database.
    await database_sync_to_async(LLMServer.objects.filter(name="vllm-2").update)(enabled=False)
    await router_refresh(pool.pk, force=True)
    assert not {s.name: s for s in router.servers}["vllm-2"].config.enabled
    live = await database_sync_to_async(lambda: LLMServer.objects.get(name="vllm-1").live)()
    assert live["health"] == COOLDOWN and "inflight" in live and "at" in live


async def test_a_call_is_routed_and_its_turn_records_the_route(
    pool,  # noqa: ANN001
    sims,  # noqa: ANN001
    hospital_agent,  # noqa: ANN001
    reports_dir,  # noqa: ANN001
    client,  # noqa: ANN001
) -> None:
    sims["vllm-1"].faults(error_rate=1.0)  # the first choice fails: the turn fails over

    @database_sync_to_async
    def use_fleet() -> None:
        Agent.objects.filter(pk=hospital_agent.pk).update(model_pool=pool)

    await use_fleet()
    call = await ws_call("hospital-receptionist")
    await call.communicator.send_to(
        text_data=json.dumps({"type": "text", "text": "Who is Dr. Sarah Johnson?"})
    )
    await call.wait_for(turn_ended(1))
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    routes = call.of("llm.route")
    assert routes and routes[0]["server"] == "vllm-2" and routes[0]["failovers"] == 1
    assert routes[0]["attempts"][0]["outcome"] == "error"
    assert call.of("turn.ended")[-1]["status"] == "completed"

    @database_sync_to_async
    def recorded() -> list:
        return Turn.objects.get(index=1).routing

    routing = await recorded()
    assert routing[0]["server"] == "vllm-2" and routing[0]["step"] == 1

    analyst = await database_sync_to_async(user_with)("ops", role="analyst")
    await database_sync_to_async(client.force_login)(analyst)  # /metrics is never public
    metrics = (await database_sync_to_async(client.get)("/metrics")).content.decode()
    assert 'parley_llm_ttft_seconds_bucket{le="0.05",pool="fleet",server="vllm-2"}' in metrics
    assert 'parley_llm_failovers_total{pool="fleet",reason="error"}' in metrics
    assert 'parley_llm_errors_total{kind="error",pool="fleet",server="vllm-1"}' in metrics


def test_metrics_need_a_token_or_a_dashboard_login(client, settings) -> None:  # noqa: ANN001
    assert client.get("/metrics").status_code == 401  # no token set: still not public
    settings.PARLEY_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and b"parley_llm_inflight_streams" in ok.content
