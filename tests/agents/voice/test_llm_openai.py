"""OpenAICompatLLM over real HTTP: against the LLM simulator and a hand-written fake server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from parley.agents.llm_simulator import SimulatorServer, SimulatorSettings
from parley.agents.voice.llm.base import LLMError
from parley.agents.voice.llm.openai_compat import OpenAICompatLLM, OpenAICompatSettings
from parley.agents.voice.messages import LLMDone, TextDelta

SECRET = "sk-test-secret-4242"
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SimulatorSettings(ttft_ms=5, itl_ms=1)) as server:
        yield server


@pytest.fixture
async def make_llm() -> AsyncIterator[Callable[..., OpenAICompatLLM]]:
    made: list[OpenAICompatLLM] = []

    def make(base_url: str, **overrides: Any) -> OpenAICompatLLM:
        options: dict[str, Any] = {
            "model": "parley-simulator",
            "api_key": SECRET,
            "timeout_s": 5.0,
            **overrides,
        }
        llm = OpenAICompatLLM(OpenAICompatSettings(base_url=base_url, **options))
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()


async def collect(llm: OpenAICompatLLM, **kwargs: Any) -> tuple[list[TextDelta], LLMDone]:
    """All chunks of one response; checks that exactly one LLMDone comes last."""
    chunks = [
        chunk async for chunk in llm.stream(messages=kwargs.pop("messages", MESSAGES), **kwargs)
    ]
    assert isinstance(chunks[-1], LLMDone)
    assert all(isinstance(chunk, TextDelta) for chunk in chunks[:-1])
    return chunks[:-1], chunks[-1]  # type: ignore[return-value]


# ---------------------------------------------------------------- against the simulator


async def test_text_streams_as_several_deltas_then_done(
    simulator: SimulatorServer, make_llm: Callable[..., OpenAICompatLLM]
) -> None:
    llm = make_llm(simulator.base_url)

    deltas, done = await collect(
        llm, messages=[{"role": "user", "content": "the quick brown fox jumps"}]
    )

    assert len(deltas) >= 5
    assert all(delta.text for delta in deltas)
    assert "".join(delta.text for delta in deltas) == "You said: the quick brown fox jumps"
    assert (done.tool_calls, done.finish_reason, done.model) == ((), "stop", "parley-simulator")
    # Token counts come back because the request asks for them (stream_options.include_usage).
    assert done.usage is not None and done.usage["completion_tokens"] > 0
    assert (
        done.usage["total_tokens"] == done.usage["prompt_tokens"] + done.usage["completion_tokens"]
    )


async def test_two_tool_calls_in_one_step_arrive_complete(
    simulator: SimulatorServer, make_llm: Callable[..., OpenAICompatLLM]
) -> None:
    model = simulator.register_script(
        "two",
        [
            [
                {
                    "tool_calls": [
                        {
                            "name": "get_patient_medications",
                            "arguments": {"patient_identifier": "Robert Wilson"},
                        },
                        {
                            "name": "update_emergency_contact",
                            "id": "call_fixed",
                            "arguments": {
                                "patient_identifier": "Robert Wilson",
                                "contact_name": "Lisa Wilson",
                                "contact_phone": "555-9876",
                            },
                        },
                    ]
                }
            ]
        ],
    )
    llm = make_llm(simulator.base_url, model=model)

    deltas, done = await collect(llm)

    assert deltas == []
    assert done.finish_reason == "tool_calls"
    assert done.model == model
    first, second = done.tool_calls
    assert first.name == "get_patient_medications"
    assert first.id.startswith("call_")
    assert json.loads(first.arguments) == {"patient_identifier": "Robert Wilson"}
    assert (second.id, second.name) == ("call_fixed", "update_emergency_contact")
    assert json.loads(second.arguments) == {
        "patient_identifier": "Robert Wilson",
        "contact_name": "Lisa Wilson",
        "contact_phone": "555-9876",
    }


async def test_malformed_arguments_pass_through_as_raw_text(
    simulator: SimulatorServer, make_llm: Callable[..., OpenAICompatLLM]
) -> None:
    raw = '{"patient_identifier": "John Sm'
    model = simulator.register_script(
        "broken", [[{"tool_calls": [{"name": "get_lab_results", "raw_arguments": raw}]}]]
    )
    llm = make_llm(simulator.base_url, model=model)

    _, done = await collect(llm)

    assert [(c.name, c.arguments) for c in done.tool_calls] == [("get_lab_results", raw)]


async def test_settings_and_tools_are_sent_with_the_request(
    simulator: SimulatorServer, make_llm: Callable[..., OpenAICompatLLM]
) -> None:
    tools = [{"type": "function", "function": {"name": "echo", "parameters": {"type": "object"}}}]
    llm = make_llm(simulator.base_url, temperature=0.7, max_tokens=42, parallel_tool_calls=False)

    await collect(llm, tools=tools)

    sent = simulator.stats.recent_requests[-1]
    assert sent["model"] == "parley-simulator"
    assert sent["stream"] is True
    assert (sent["temperature"], sent["max_tokens"]) == (0.7, 42)
    assert sent["tools"] == tools
    assert sent["parallel_tool_calls"] is False
    assert sent["messages"] == MESSAGES


async def test_the_connection_is_reused_between_turns(
    simulator: SimulatorServer, make_llm: Callable[..., OpenAICompatLLM]
) -> None:
    llm = make_llm(simulator.base_url)

    await collect(llm)
    await collect(llm)
    await collect(llm)

    assert simulator.stats.requests == 3
    assert len(simulator.stats.peers) == 1


async def test_connection_refused_is_an_llm_error(
    make_llm: Callable[..., OpenAICompatLLM],
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    llm = make_llm(base_url)

    with pytest.raises(LLMError) as caught:
        await collect(llm)

    assert base_url in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_unknown_model_is_an_llm_error_with_the_status(
    simulator: SimulatorServer, make_llm: Callable[..., OpenAICompatLLM]
) -> None:
    llm = make_llm(simulator.base_url, model="gpt-unknown")

    with pytest.raises(LLMError) as caught:
        await collect(llm)

    message = str(caught.value)
    assert "404" in message
    assert simulator.base_url in message
    assert "gpt-unknown" in message
    assert SECRET not in message


async def test_cancelling_the_consumer_closes_the_stream_at_once(
    simulator: SimulatorServer, make_llm: Callable[..., OpenAICompatLLM]
) -> None:
    model = simulator.register_script("long", [[{"text": "word " * 500}]], ttft_ms=0, itl_ms=20)
    llm = make_llm(simulator.base_url, model=model)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in llm.stream(messages=MESSAGES):
            first.set()  # keep reading: cancelled while awaiting the next token

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await simulator.wait_for(lambda s: s.streams_aborted == 1, timeout_s=2.0)
    assert simulator.stats.streams_completed == 0


async def test_cancelling_a_busy_consumer_also_closes_the_stream(
    simulator: SimulatorServer, make_llm: Callable[..., OpenAICompatLLM]
) -> None:
    model = simulator.register_script("long2", [[{"text": "word " * 500}]], ttft_ms=0, itl_ms=20)
    llm = make_llm(simulator.base_url, model=model)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in llm.stream(messages=MESSAGES):
            first.set()
            await asyncio.sleep(3600)  # e.g. blocked on a full TTS queue when the caller hangs up

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await simulator.wait_for(lambda s: s.streams_aborted == 1, timeout_s=2.0)


async def test_the_simulator_hospital_policy_through_the_client(
    simulator: SimulatorServer, make_llm: Callable[..., OpenAICompatLLM]
) -> None:
    from parley.agents.llm_simulator.policies import HOSPITAL_DIR

    tools = json.loads((HOSPITAL_DIR / "tools.json").read_text())
    llm = make_llm(simulator.base_url)

    _, done = await collect(
        llm,
        messages=[{"role": "user", "content": "what department is doctor john adams in"}],
        tools=tools,
    )

    assert [(c.name, json.loads(c.arguments)) for c in done.tool_calls] == [
        ("get_doctor_info", {"doctor_identifier": "Dr. John Adams"})
    ]


# ---------------------------------------------------------------- against a fake server


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


@contextlib.asynccontextmanager
async def fake_server(
    frames: list[dict[str, Any] | str], *, status: int = 200, done: bool = True
) -> AsyncIterator[str]:
    """An OpenAI-compatible endpoint that replays ``frames`` as SSE; yields its base URL."""

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.read()
        if status != 200:
            return web.json_response(
                {"error": {"message": "engine overloaded", "type": "server_error"}},
                status=status,
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for frame in frames:
            payload = frame if isinstance(frame, str) else json.dumps(frame)
            await response.write(f"data: {payload}\n\n".encode())
        if done:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def test_a_tool_call_without_index_is_accumulated(
    make_llm: Callable[..., OpenAICompatLLM],
) -> None:
    frames: list[dict[str, Any] | str] = [
        chunk({"role": "assistant", "content": ""}),
        chunk(
            {
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_lab_results", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"function": {"arguments": '{"patient_'}}]}),
        chunk({"tool_calls": [{"function": {"arguments": 'identifier": "John Smith"}'}}]}),
        chunk({}, finish_reason="tool_calls"),
    ]
    async with fake_server(frames) as base_url:
        _, done = await collect(make_llm(base_url))

    assert [(c.id, c.name, json.loads(c.arguments)) for c in done.tool_calls] == [
        ("call_a", "get_lab_results", {"patient_identifier": "John Smith"})
    ]
    assert (done.finish_reason, done.model) == ("tool_calls", "fake")


async def test_whole_calls_in_single_deltas(make_llm: Callable[..., OpenAICompatLLM]) -> None:
    frames: list[dict[str, Any] | str] = [
        chunk({"role": "assistant", "content": "Let me check. "}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "get_doctor_info",
                            "arguments": '{"doctor_identifier": "D1002"}',
                        },
                    }
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_2",
                        "type": "function",
                        "function": {
                            "name": "get_appointment",
                            "arguments": '{"patient_identifier": "P2001"}',
                        },
                    }
                ]
            }
        ),
        chunk({}, finish_reason="tool_calls"),
    ]
    async with fake_server(frames) as base_url:
        deltas, done = await collect(make_llm(base_url))

    assert [d.text for d in deltas] == ["Let me check. "]
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [
        ("call_1", "get_doctor_info", '{"doctor_identifier": "D1002"}'),
        ("call_2", "get_appointment", '{"patient_identifier": "P2001"}'),
    ]


async def test_parallel_calls_sharing_index_zero_are_told_apart_by_id(
    make_llm: Callable[..., OpenAICompatLLM],
) -> None:
    frames: list[dict[str, Any] | str] = [
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_x",
                        "type": "function",
                        "function": {"name": "a", "arguments": "{}"},
                    }
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_y",
                        "type": "function",
                        "function": {"name": "b", "arguments": "{}"},
                    }
                ]
            }
        ),
        chunk({}, finish_reason="tool_calls"),
    ]
    async with fake_server(frames) as base_url:
        _, done = await collect(make_llm(base_url))

    assert [(c.id, c.name) for c in done.tool_calls] == [("call_x", "a"), ("call_y", "b")]


async def test_missing_id_is_made_up_and_empty_arguments_become_an_object(
    make_llm: Callable[..., OpenAICompatLLM],
) -> None:
    frames: list[dict[str, Any] | str] = [
        chunk({"tool_calls": [{"index": 0, "function": {"name": "ping"}}]}),
        chunk({}, finish_reason="tool_calls"),
    ]
    async with fake_server(frames) as base_url:
        _, done = await collect(make_llm(base_url))

    (call,) = done.tool_calls
    assert call.id.startswith("call_") and len(call.id) == 29
    assert (call.name, call.arguments) == ("ping", "{}")


async def test_a_stream_without_finish_reason_is_an_llm_error(
    make_llm: Callable[..., OpenAICompatLLM],
) -> None:
    frames: list[dict[str, Any] | str] = [chunk({"content": "Half a sen"})]
    async with fake_server(frames, done=False) as base_url:
        llm = make_llm(base_url)
        received = []
        with pytest.raises(LLMError, match="without a finish_reason"):
            async for item in llm.stream(messages=MESSAGES):
                received.append(item)

    assert received == [TextDelta(text="Half a sen")]


async def test_an_error_event_inside_the_stream_is_an_llm_error(
    make_llm: Callable[..., OpenAICompatLLM],
) -> None:
    frames: list[dict[str, Any] | str] = [
        chunk({"content": "Hel"}),
        {"error": {"message": "CUDA out of memory", "type": "server_error", "code": 500}},
    ]
    async with fake_server(frames) as base_url:
        with pytest.raises(LLMError, match="CUDA out of memory"):
            await collect(make_llm(base_url))


async def test_a_malformed_chunk_is_an_llm_error(
    make_llm: Callable[..., OpenAICompatLLM],
) -> None:
    async with fake_server(["{not json"]) as base_url:
        with pytest.raises(LLMError, match="malformed"):
            await collect(make_llm(base_url))


async def test_http_errors_name_the_status_and_the_server_message(
    make_llm: Callable[..., OpenAICompatLLM],
) -> None:
    async with fake_server([], status=503) as base_url:
        with pytest.raises(LLMError) as caught:
            await collect(make_llm(base_url))

    message = str(caught.value)
    assert "HTTP 503" in message and "engine overloaded" in message and base_url in message
    assert SECRET not in message


def test_settings_keep_the_api_key_out_of_repr() -> None:
    settings = OpenAICompatSettings(base_url="http://x/v1", model="m", api_key=SECRET)
    assert SECRET not in repr(settings)
    assert (settings.temperature, settings.max_tokens, settings.max_retries) == (0.2, 300, 0)
    assert settings.parallel_tool_calls is None


async def test_empty_chunks_usage_chunks_and_interleaved_tool_deltas(
    make_llm: Callable[..., OpenAICompatLLM],
) -> None:
    # What vLLM and OpenAI send at the edges: a chunk without choices (keep-alive), an empty
    # delta, two tool calls whose argument deltas interleave by index, and a final usage
    # chunk without choices (stream_options.include_usage).
    no_choices = {**chunk({}), "choices": []}
    usage = {
        **chunk({}),
        "choices": [],
        "usage": {"prompt_tokens": 812, "completion_tokens": 41, "total_tokens": 853},
    }

    def call_delta(index: int, **fields: Any) -> dict[str, Any]:
        return chunk({"tool_calls": [{"index": index, **fields}]})

    frames: list[dict[str, Any] | str] = [
        no_choices,
        chunk({"role": "assistant", "content": ""}),
        chunk({}),
        chunk({"content": "Checking both. "}),
        call_delta(0, id="call_0", type="function", function={"name": "get_doctor_info"}),
        call_delta(1, id="call_1", type="function", function={"name": "get_patient_info"}),
        call_delta(1, function={"arguments": '{"patient_identifier": '}),
        call_delta(0, function={"arguments": '{"doctor_identifier": '}),
        call_delta(0, function={"arguments": '"D1002"}'}),
        call_delta(1, function={"arguments": '"P1001"}'}),
        no_choices,
        chunk({}, finish_reason="tool_calls"),
        usage,
    ]
    async with fake_server(frames) as base_url:
        deltas, done = await collect(make_llm(base_url))

    assert [d.text for d in deltas] == ["Checking both. "]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in done.tool_calls] == [
        ("call_0", "get_doctor_info", {"doctor_identifier": "D1002"}),
        ("call_1", "get_patient_info", {"patient_identifier": "P1001"}),
    ]
    assert done.finish_reason == "tool_calls"
    assert done.usage == {"prompt_tokens": 812, "completion_tokens": 41, "total_tokens": 853}


def test_requests_ask_for_token_usage_unless_turned_off() -> None:
    on = OpenAICompatLLM(OpenAICompatSettings(base_url="http://x/v1", model="m"))
    off = OpenAICompatLLM(
        OpenAICompatSettings(base_url="http://x/v1", model="m", include_usage=False)
    )
    messages = [{"role": "user", "content": "hi"}]
    assert on._request(messages=messages, tools=None)["stream_options"] == {"include_usage": True}
    assert "stream_options" not in off._request(messages=messages, tools=None)
