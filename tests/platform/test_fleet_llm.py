"""FleetLLM against real simulator processes over HTTP: affinity, spill-over, failover before
the first token, cooldown and recovery, and streams that break after it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from parley.agents.llm_simulator.server import SimulatorServer, SimulatorSettings
from parley.agents.voice.llm.base import LLMError
from parley.agents.voice.llm.fleet import FleetLLM, FleetSettings
from parley.agents.voice.messages import LLMDone, TextDelta
from parley.platform.fleet.router import COOLDOWN, HEALTHY, FleetRouter, HealthPolicy, ServerConfig
from parley.testing.simulators import SimulatorProcess, fleet_start, free_port

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "please say something moderately long for me"}]
HEALTHY_FAULTS = {
    "error_rate": 0.0,
    "stall_rate": 0.0,
    "stall_ms": 0.0,
    "stall_after_tokens": None,
    "disconnect_after_tokens": None,
    "slow_factor": 1.0,
    "unhealthy": False,
}


@pytest.fixture(scope="module")
def fleet() -> Iterator[dict[str, SimulatorProcess]]:
    processes = fleet_start({"a": [], "b": [], "c": []}, ttft_ms=30, itl_ms=5)
    yield processes
    for process in processes.values():
        process.stop()


@pytest.fixture(autouse=True)
def _healthy(fleet: dict[str, SimulatorProcess]) -> None:
    for process in fleet.values():
        process.faults(**HEALTHY_FAULTS)


def router_of(fleet, *names: str, max_streams: int = 8, dead: tuple[str, ...] = ()) -> FleetRouter:  # noqa: ANN001
    configs = [
        ServerConfig(id=n, name=n, base_url=fleet[n].base_url, max_streams=max_streams)
        for n in names
    ]
    configs += [
        ServerConfig(id=n, name=n, base_url=f"http://127.0.0.1:{free_port()}/v1") for n in dead
    ]
    return FleetRouter(configs, policy=HealthPolicy(failure_threshold=2, cooldown_s=0.5))


def llm_of(router: FleetRouter, **settings) -> FleetLLM:  # noqa: ANN003
    return FleetLLM(
        settings=FleetSettings(pool="test", model="parley-simulator", **settings), router=router
    )


async def collect(llm: FleetLLM) -> tuple[str, LLMDone]:
    text, done = [], None
    async for chunk in llm.stream(messages=MESSAGES):
        if isinstance(chunk, TextDelta):
            text.append(chunk.text)
        else:
            done = chunk
    assert done is not None
    return "".join(text), done


async def test_a_conversation_keeps_its_server(fleet) -> None:  # noqa: ANN001
    router = router_of(fleet, "a", "b", "c")
    one, two = llm_of(router), llm_of(router)
    routes = [(await collect(one))[1].route for _ in range(3)]
    assert [r["server"] for r in routes] == ["a", "a", "a"]
    assert [r["reason"] for r in routes] == ["new", "affinity", "affinity"]
    text, done = await collect(two)
    assert text.startswith("You said:") and done.route["failovers"] == 0
    await one.aclose()
    await two.aclose()


async def test_concurrent_conversations_spread_and_spill_over_at_the_limit(fleet) -> None:  # noqa: ANN001
    router = router_of(fleet, "a", "b", max_streams=1)
    fleet["a"].faults(slow_factor=20)  # a's streams last long: it stays busy
    first = llm_of(router)
    busy = asyncio.ensure_future(collect(first))
    while router.state("a").inflight == 0:
        await asyncio.sleep(0.01)
    second = llm_of(router)
    _, done = await collect(second)
    assert (done.route["server"], done.route["reason"]) == ("b", "new")
    # The first conversation asks again while its own stream still holds a: it spills to b.
    _, again = await collect(first)
    assert (again.route["server"], again.route["reason"]) == ("b", "spill_over")
    await busy
    for llm in (first, second):
        await llm.aclose()


@pytest.mark.parametrize("fault", ["error", "stall", "refused"])
async def test_a_failing_server_loses_the_turn_before_its_first_token(fleet, fault) -> None:  # noqa: ANN001
    if fault == "refused":
        router = router_of(fleet, "b", dead=("a",))
        router.update(
            [
                ServerConfig(id="a", name="a", base_url=router.state("a").config.base_url),
                router.state("b").config,
            ]
        )
    else:
        router = router_of(fleet, "a", "b")
        if fault == "error":
            fleet["a"].faults(error_rate=1.0)
        else:
            fleet["a"].faults(stall_rate=1.0, stall_ms=5_000)
    llm = llm_of(router, ttft_deadline_ms=300)
    started = time.monotonic()
    text, done = await collect(llm)
    elapsed = time.monotonic() - started
    await llm.aclose()
    route = done.route
    assert route["server"] == "b" and route["failovers"] == 1
    first = route["attempts"][0]
    expected = {"error": "error", "stall": "ttft_deadline", "refused": "error"}[fault]
    assert (first["server"], first["outcome"]) == ("a", expected)
    assert text.startswith("You said:") and text.count("You said:") == 1  # never repeated
    assert elapsed < 2.0  # the stall cost the deadline (0.3 s), not the 5 s stall
    assert router.state("a").consecutive_failures == 1 and router.state("a").inflight == 0


async def test_repeated_failures_cool_a_server_down_and_it_recovers(fleet) -> None:  # noqa: ANN001
    router = router_of(fleet, "a", "b")
    fleet["a"].faults(error_rate=1.0)
    for _ in range(2):
        llm = llm_of(router)
        _, done = await collect(llm)  # each new conversation tries a first, fails over to b
        assert [a["server"] for a in done.route["attempts"]] == ["a", "b"]
        await llm.aclose()
    assert router.state("a").health == COOLDOWN
    llm = llm_of(router)
    _, done = await collect(llm)
    assert [a["server"] for a in done.route["attempts"]] == ["b"]  # a is not even tried
    await llm.aclose()
    fleet["a"].faults(error_rate=0.0)
    await asyncio.sleep(0.6)  # the cooldown is over: a is half-open
    llm = llm_of(router)
    _, done = await collect(llm)
    await llm.aclose()
    assert done.route["server"] == "a" and router.state("a").health == HEALTHY


async def healthy_text() -> str:
    """The simulator's reply to MESSAGES (deterministic: the same on every server)."""
    async with SimulatorServer(SimulatorSettings(port=0, ttft_ms=0, itl_ms=0)) as server:
        router = FleetRouter([ServerConfig(id="s", name="s", base_url=server.base_url)])
        llm = llm_of(router)
        text, _ = await collect(llm)
        await llm.aclose()
    return text


@pytest.mark.parametrize("fault", ["disconnect", "stall"])
async def test_a_stream_that_fails_mid_reply_is_continued_by_another_server(fleet, fault) -> None:  # noqa: ANN001
    expected = await healthy_text()
    router = router_of(fleet, "a", "b")
    if fault == "disconnect":
        fleet["a"].faults(disconnect_after_tokens=3)
    else:
        fleet["a"].faults(stall_rate=1.0, stall_ms=5_000, stall_after_tokens=3)
    llm = llm_of(router, stall_timeout_ms=300)
    deltas: list[str] = []
    done = None
    async for chunk in llm.stream(messages=MESSAGES):
        if isinstance(chunk, TextDelta):
            deltas.append(chunk.text)
        else:
            done = chunk
    await llm.aclose()
    # One coherent answer: a's three words, then b's continuation, nothing twice.
    assert "".join(deltas) == expected
    assert done is not None and done.finish_reason == "stop"
    route = done.route
    outcome = {"disconnect": "broken_stream", "stall": "stall"}[fault]
    first, second = route["attempts"]
    assert (first["server"], first["outcome"]) == ("a", outcome)
    assert (second["server"], second["reason"], second["outcome"]) == ("b", "failover", "ok")
    assert second["resumed_at_chars"] == len("".join(deltas[:3]))
    assert route["server"] == "b" and route["failovers"] == route["midstream_failovers"] == 1
    # A mid-stream failure cools the server down at once (below the failure threshold).
    assert router.state("a").health == COOLDOWN and router.state("a").inflight == 0
    assert router.state("b").health == HEALTHY


async def test_a_server_killed_mid_reply_is_continued_by_another(fleet) -> None:  # noqa: ANN001
    expected = await healthy_text()
    doomed = SimulatorProcess("doomed", ttft_ms=30, itl_ms=40).start()
    try:
        router = FleetRouter(
            [
                ServerConfig(id="a", name="a", base_url=doomed.base_url),  # chosen first
                ServerConfig(id="b", name="b", base_url=fleet["b"].base_url),
            ]
        )
        llm = llm_of(router)
        text, kills = [], 0
        done = None
        async for chunk in llm.stream(messages=MESSAGES):
            if isinstance(chunk, TextDelta):
                text.append(chunk.text)
                if len(text) == 2:
                    doomed.kill()  # SIGKILL mid-reply
                    kills += 1
            else:
                done = chunk
        await llm.aclose()
    finally:
        doomed.stop()
    assert kills == 1 and done is not None
    assert "".join(text) == expected
    attempts = done.route["attempts"]
    assert [(a["server"], a["outcome"]) for a in attempts] == [
        ("a", "broken_stream"),
        ("b", "ok"),
    ]
    assert router.state("a").health == COOLDOWN


async def test_a_tool_call_cut_mid_stream_is_asked_again_never_half_run(fleet) -> None:  # noqa: ANN001
    """A reply that is only a tool call breaks inside its argument deltas: nothing of it is
    passed on, the next server answers the whole call."""
    call = {"name": "current_time", "arguments": {"zone": "UTC"}}
    async with httpx.AsyncClient() as client:
        for process in fleet.values():
            url = f"{process.root_url}/simulator/scripts/cut-call"
            (await client.post(url, json={"turns": [[{"tool_calls": [call]}]]})).raise_for_status()
    router = router_of(fleet, "a", "b")
    fleet["a"].faults(disconnect_after_tokens=3)  # the name delta and two argument fragments
    llm = FleetLLM(
        settings=FleetSettings(pool="test", model="simulator-script/cut-call"), router=router
    )
    messages = [{"role": "user", "content": "What time is it?"}]
    tools = [{"type": "function", "function": {"name": "current_time", "parameters": {}}}]
    chunks = [chunk async for chunk in llm.stream(messages=messages, tools=tools)]
    await llm.aclose()
    assert len(chunks) == 1 and isinstance(chunks[0], LLMDone)
    done = chunks[0]
    assert done.tool_calls and done.tool_calls[0].name == "current_time"
    assert json.loads(done.tool_calls[0].arguments) == {"zone": "UTC"}  # whole, not a half
    attempts = done.route["attempts"]
    assert [(a["server"], a["outcome"]) for a in attempts] == [("a", "broken_stream"), ("b", "ok")]
    assert "resumed_at_chars" not in attempts[1]  # nothing was said: asked afresh


async def test_a_mid_stream_failure_with_no_server_left_is_an_error_after_the_text(fleet) -> None:  # noqa: ANN001
    router = router_of(fleet, "a")
    fleet["a"].faults(disconnect_after_tokens=3)
    llm = llm_of(router)
    received: list[str] = []
    with pytest.raises(LLMError, match="broke after its first token") as caught:
        async for chunk in llm.stream(messages=MESSAGES):
            if isinstance(chunk, TextDelta):
                received.append(chunk.text)
    await llm.aclose()
    assert len(received) == 3  # what was streamed stays; nothing repeated
    route = caught.value.route
    assert [(a["server"], a["outcome"]) for a in route["attempts"]] == [("a", "broken_stream")]
    assert router.state("a").health == COOLDOWN


async def test_no_usable_server_is_a_clear_error(fleet) -> None:  # noqa: ANN001
    router = router_of(fleet, "a", "b")
    for name in ("a", "b"):
        fleet[name].faults(error_rate=1.0)
    llm = llm_of(router, max_attempts=3)
    with pytest.raises(LLMError, match="no server of pool 'test' answered") as caught:
        await collect(llm)
    await llm.aclose()
    assert [a["server"] for a in caught.value.route["attempts"]] == ["a", "b"]
