"""The LLM simulator: its OpenAI-compatible wire protocol (raw HTTP) and its scripted policies."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import httpx
import jsonschema
import pytest

from parley.agents.llm_simulator import SimulatorServer, SimulatorSettings
from parley.agents.llm_simulator.policies import (
    HOSPITAL_DIR,
    ChatRequest,
    HospitalPolicy,
    ScriptPolicy,
    script_position,
)
from parley.agents.llm_simulator.spoken import find_date, find_phone, find_time, tokens
from parley.tools.replay import scenario_tasks_path

HOSPITAL_TOOLS: list[dict[str, Any]] = json.loads((HOSPITAL_DIR / "tools.json").read_text())
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in HOSPITAL_TOOLS}
DOCTORS = json.loads((HOSPITAL_DIR / "data" / "doctors.json").read_text())
TASKS = {task["id"]: task for task in json.loads(scenario_tasks_path("hospital").read_text())}


@pytest.fixture
async def simulator():
    async with SimulatorServer(SimulatorSettings(ttft_ms=5, itl_ms=1)) as server:
        yield server


@pytest.fixture
async def client(simulator: SimulatorServer):
    async with httpx.AsyncClient(base_url=simulator.base_url, timeout=10.0) as http:
        yield http


async def sse(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streaming request; check the SSE framing; return the JSON chunks in order."""
    async with client.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = (await response.aread()).decode()
    assert raw.endswith("data: [DONE]\n\n")
    frames = raw.split("\n\n")[:-1]
    assert all(frame.startswith("data: ") and "\n" not in frame for frame in frames)
    assert frames[-1] == "data: [DONE]"
    return [json.loads(frame.removeprefix("data: ")) for frame in frames[:-1]]


def root(simulator: SimulatorServer, path: str) -> str:
    """An absolute URL outside ``/v1`` (health, script registration)."""
    return simulator.base_url.removesuffix("/v1") + path


def content_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )


def tool_calls_of(chunks: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    """Accumulate streamed tool-call deltas by index, checking the OpenAI delta shape."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for delta in choice["delta"].get("tool_calls") or []:
                index = delta["index"]
                if index not in calls:
                    assert delta["id"] and delta["type"] == "function"
                    assert delta["function"]["name"]
                    assert delta["function"]["arguments"] == ""
                    calls[index] = {
                        "id": delta["id"],
                        "name": delta["function"]["name"],
                        "arguments": "",
                    }
                else:
                    assert set(delta) == {"index", "function"}
                    assert set(delta["function"]) == {"arguments"}
                    calls[index]["arguments"] += delta["function"]["arguments"]
    return calls


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant_calls(calls: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls
        ],
    }


# ---------------------------------------------------------------- wire protocol


async def test_stream_is_sse_with_role_first_tokens_and_done(client: httpx.AsyncClient) -> None:
    chunks = await sse(
        client,
        {"model": "parley-simulator", "stream": True, "messages": [user("hello there, simulator")]},
    )

    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content_of(chunks) == "You said: hello there, simulator"
    content_chunks = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) >= 4  # word-sized tokens, not one blob
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "parley-simulator"
        assert chunk["system_fingerprint"] == "parley-llm-simulator"
        assert "usage" not in chunk


async def test_usage_is_in_the_last_chunk_when_asked(client: httpx.AsyncClient) -> None:
    chunks = await sse(
        client,
        {
            "model": "parley-simulator",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [user("count my words please")],
        },
    )

    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["prompt_tokens"] == 4
    assert usage["completion_tokens"] >= 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert all("usage" not in chunk for chunk in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_non_stream_answers_a_chat_completion_object(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/chat/completions", json={"model": "parley-simulator", "messages": [user("plain please")]}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["system_fingerprint"] == "parley-llm-simulator"
    assert body["choices"] == [
        {
            "index": 0,
            "logprobs": None,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "You said: plain please"},
        }
    ]
    assert body["usage"]["total_tokens"] > 0


async def test_max_tokens_cuts_the_text_with_finish_reason_length(
    client: httpx.AsyncClient,
) -> None:
    chunks = await sse(
        client,
        {
            "model": "parley-simulator",
            "stream": True,
            "max_tokens": 2,
            "messages": [user("one two three four five")],
        },
    )

    assert content_of(chunks) == "You said:"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"model": "parley-simulator"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0]"),
        ({"messages": [{"role": "user"}]}, "messages[0]"),
        ({"messages": [{"role": "tool", "content": "{}"}]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
        (
            {
                "messages": [{"role": "user", "content": "hi"}],
                "stream_options": {"include_usage": True},
            },
            "stream_options",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
            "tools[0]",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 5}, "temperature"),
    ],
)
async def test_bad_requests_get_openai_style_400(
    client: httpx.AsyncClient, body: Any, param: str | None
) -> None:
    response = await client.post("/chat/completions", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert error["param"] == param


async def test_invalid_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize("model", ["gpt-4o", "simulator-script/never-registered"])
async def test_unknown_model_is_a_404(client: httpx.AsyncClient, model: str) -> None:
    response = await client.post(
        "/chat/completions", json={"model": model, "stream": True, "messages": [user("hi")]}
    )

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert model in error["message"]


async def test_health_and_models_say_it_is_a_simulator(
    client: httpx.AsyncClient, simulator: SimulatorServer
) -> None:
    simulator.register_script("listed", [[{"text": "hi"}]])

    models = (await client.get("/models")).json()
    health = await client.get(root(simulator, "/health"))

    assert models["object"] == "list"
    ids = [m["id"] for m in models["data"]]
    assert ids == ["parley-simulator", "simulator-script/listed"]
    assert all("simulator" in i for i in ids)
    assert {m["owned_by"] for m in models["data"]} == {"parley-llm-simulator"}
    assert health.status_code == 200
    assert health.json()["simulator"] is True
    assert "not a real model" in health.json()["name"]


async def test_startup_log_line_says_not_a_real_model(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="parley.agents.llm_simulator")
    async with SimulatorServer(SimulatorSettings(ttft_ms=0, itl_ms=0)) as server:
        pass
    assert f"Parley LLM simulator (not a real model) listening on {server.base_url}" in (
        caplog.text
    )


def test_settings_refuse_a_model_id_without_simulator() -> None:
    with pytest.raises(ValueError, match="simulator"):
        SimulatorSettings(model="llama-3-8b")


# ---------------------------------------------------------------- pacing


async def first_and_last_token_times(client: httpx.AsyncClient, model: str) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    first = last = 0.0
    body = {"model": model, "stream": True, "messages": [user("go")]}
    async with client.stream("POST", "/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if '"content":"' in line and '"content":""' not in line:
                last = loop.time()
                first = first or last
    return first, last


async def test_ttft_and_itl_pace_the_stream(
    client: httpx.AsyncClient, simulator: SimulatorServer
) -> None:
    text = "one two three four five six seven eight nine ten"
    fast = simulator.register_script("fast", [[{"text": text}]], ttft_ms=0, itl_ms=0)
    slow_start = simulator.register_script("slow-start", [[{"text": "hi"}]], ttft_ms=300, itl_ms=0)
    slow_tokens = simulator.register_script("slow-tokens", [[{"text": text}]], ttft_ms=0, itl_ms=40)

    (fast_first, fast_last), (slow_first, _), (_, slow_tokens_last) = await asyncio.gather(
        first_and_last_token_times(client, fast),
        first_and_last_token_times(client, slow_start),
        first_and_last_token_times(client, slow_tokens),
    )

    assert fast_first < slow_first  # a large TTFT delays the first token
    assert fast_last < slow_tokens_last  # a large ITL delays the end of the same text


# ---------------------------------------------------------------- script mode


async def test_script_streams_parallel_tool_calls_like_openai(
    client: httpx.AsyncClient, simulator: SimulatorServer
) -> None:
    model = simulator.register_script(
        "two-calls",
        [
            [
                {
                    "tool_calls": [
                        {
                            "name": "get_lab_results",
                            "arguments": {"patient_identifier": "John Smith"},
                        },
                        {
                            "name": "get_doctor_info",
                            "arguments": {"doctor_identifier": "Dr. Sarah Johnson"},
                        },
                    ]
                }
            ]
        ],
    )

    chunks = await sse(client, {"model": model, "stream": True, "messages": [user("go")]})

    calls = tool_calls_of(chunks)
    assert [calls[0]["name"], calls[1]["name"]] == ["get_lab_results", "get_doctor_info"]
    assert json.loads(calls[0]["arguments"]) == {"patient_identifier": "John Smith"}
    assert json.loads(calls[1]["arguments"]) == {"doctor_identifier": "Dr. Sarah Johnson"}
    indexes = [d["index"] for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert indexes == sorted(indexes) and len(indexes) > 4  # fragments, index 0 then 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert content_of(chunks) == ""


async def test_script_registered_over_http_selects_steps_per_turn(
    client: httpx.AsyncClient, simulator: SimulatorServer
) -> None:
    script = {
        "turns": [
            [
                {
                    "tool_calls": [
                        {"name": "not_offered", "raw_arguments": "{broken", "id": "call_1"}
                    ]
                },
                {"text": "First turn answer."},
            ],
            [{"text": "Second turn answer."}],
        ]
    }
    created = await client.post(root(simulator, "/simulator/scripts/flow"), json=script)
    assert created.status_code == 201
    assert created.json() == {"model": "simulator-script/flow", "turns": 2}

    async def ask(messages: list[dict[str, Any]]) -> dict[str, Any]:
        response = await client.post(
            "/chat/completions", json={"model": "simulator-script/flow", "messages": messages}
        )
        assert response.status_code == 200
        return response.json()["choices"][0]

    conversation: list[dict[str, Any]] = [user("first")]
    step = await ask(conversation)
    assert step["finish_reason"] == "tool_calls"
    assert step["message"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "not_offered", "arguments": "{broken"},
        }
    ]

    conversation += [
        step["message"],
        {"role": "tool", "tool_call_id": "call_1", "content": "Error: bad arguments"},
    ]
    step = await ask(conversation)
    assert step["message"]["content"] == "First turn answer."

    conversation += [step["message"], user("second")]
    step = await ask(conversation)
    assert step["message"]["content"] == "Second turn answer."

    conversation += [step["message"]]
    step = await ask(conversation)
    assert step["message"]["content"] == ScriptPolicy.END_OF_SCRIPT


async def test_bad_script_registration_is_a_400(
    client: httpx.AsyncClient, simulator: SimulatorServer
) -> None:
    response = await client.post(
        root(simulator, "/simulator/scripts/bad"),
        json={"turns": [[{"tool_calls": [{"arguments": {}}]}]]},
    )
    assert response.status_code == 400
    assert "turns[0][0].tool_calls[0].name" in response.json()["error"]["message"]


def test_script_position_counts_users_and_assistants_after_the_last_user() -> None:
    messages = [
        {"role": "system", "content": "s"},
        user("a"),
        {"role": "assistant", "content": "x"},
        user("b"),
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "1", "content": "{}"},
        {"role": "assistant", "content": None, "tool_calls": []},
    ]
    assert script_position(messages) == (1, 2)
    assert script_position(messages[:1]) == (-1, 0)


# ---------------------------------------------------------------- hospital policy


def hospital_reply(messages: list[dict[str, Any]]):
    request = ChatRequest(
        model="parley-simulator", messages=messages, tool_names=frozenset(SCHEMAS)
    )
    return HospitalPolicy.load().respond(request)


async def test_hospital_cancel_request_calls_a_tool_then_answers_briefly(
    client: httpx.AsyncClient,
) -> None:
    messages = [
        {"role": "system", "content": "You are the hospital's phone agent."},
        user("i need to cancel my appointment with doctor sarah johnson"),
    ]
    body = {"model": "parley-simulator", "stream": True, "tools": HOSPITAL_TOOLS}

    chunks = await sse(client, {**body, "messages": messages})

    calls = list(tool_calls_of(chunks).values())
    assert calls and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    for call in calls:
        assert call["name"] in {"cancel_appointment", "get_appointment", "get_doctor_info"}
        arguments = json.loads(call["arguments"])
        jsonschema.validate(arguments, SCHEMAS[call["name"]])
    assert "Sarah Johnson" in calls[0]["arguments"]

    messages.append(assistant_calls(calls))
    for call in calls:
        messages.append(
            {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(DOCTORS["D1002"])}
        )
    chunks = await sse(client, {**body, "messages": messages})

    text = content_of(chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not tool_calls_of(chunks)
    assert "Sarah Johnson" in text
    assert len(re.findall(r"(?<!Dr)[.?!](?:\s|$)", text)) <= 2 and len(text) < 200
    assert not re.search(r"[*#`_\[\]]", text)  # spoken text, no markdown
    assert "name or patient ID" in text  # the cancellation still needs the caller


@pytest.mark.parametrize(
    "said",
    [
        "My voice is my passport, verify me.",
        "what time does the radiology department open on saturday",
    ],
)
async def test_hospital_unmappable_request_asks_for_name_or_patient_id(
    client: httpx.AsyncClient, said: str
) -> None:
    chunks = await sse(
        client,
        {
            "model": "parley-simulator",
            "stream": True,
            "tools": HOSPITAL_TOOLS,
            "messages": [user(said)],
        },
    )

    text = content_of(chunks)
    assert not tool_calls_of(chunks)
    assert "full name or patient ID" in text
    assert len(re.findall(r"(?<!Dr)[.?!](?:\s|$)", text)) <= 2


# (task id, what the caller says) → the task's expected tool calls, in one step.
SINGLE_STEP_TASKS = [
    ("entry_16", "hi can you pull up the patient information for emily davis"),
    ("entry_17", "what is the specialty and department of doctor michael chen"),
    ("entry_18", "this is david wilson i am calling about my lab results"),
    ("entry_19", "sarah miller here can i get my current medication list"),
    (
        "entry_20",
        "please book an appointment for james anderson with doctor lisa wilson in "
        "pediatrics on january thirtieth twenty twenty four at three p m",
    ),
    (
        "entry_21",
        "this is michael davis i need to cancel my appointment with doctor robert "
        "chen on january twenty eighth twenty twenty four at one p m",
    ),
    (
        "entry_22",
        "this is lisa garcia i need to update my emergency contact to my husband "
        "pedro garcia at five five five one zero two two",
    ),
    ("entry_23", "jennifer brown here i would like to check all my referrals"),
    ("entry_24", "this is doctor david brown please get my incoming referrals"),
    (
        "entry_25",
        "schedule william martinez with doctor jennifer martinez in dermatology on "
        "february first twenty twenty four at nine a m",
    ),
    ("entry_26", "please get the patient information and current medications for alice johnson"),
    ("entry_28", "emily taylor needs her current medications and recent lab results"),
    ("entry_41", "which department does doctor john adams work in"),
    ("entry_44", "doctor robert chen wants to review his outgoing referrals"),
    ("entry_45", "can you read me the current medication list for patient p two zero zero five"),
]


@pytest.mark.parametrize(("task_id", "said"), SINGLE_STEP_TASKS)
def test_hospital_policy_maps_spoken_requests_to_the_benchmark_actions(
    task_id: str, said: str
) -> None:
    reply = hospital_reply([user(said)])

    made = [{"name": c.name, "arguments": json.loads(c.arguments)} for c in reply.tool_calls]
    assert made == TASKS[task_id]["actions"]
    for call in made:
        jsonschema.validate(call["arguments"], SCHEMAS[call["name"]])


def test_hospital_cancel_flow_over_turns_matches_the_benchmark() -> None:
    """Doctor, date and time in turn 1; the caller's patient ID in turn 2 → one cancel call."""
    said = (
        "I need to cancel my appointment with Doctor Sarah Johnson on January fifteenth at nine A M"
    )
    messages: list[dict[str, Any]] = [user(said)]
    first = hospital_reply(messages)
    assert [c.name for c in first.tool_calls] == ["get_doctor_info"]
    call = first.tool_calls[0]
    messages += [
        assistant_calls([{"id": call.id, "name": call.name, "arguments": call.arguments}]),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(DOCTORS["D1002"])},
    ]
    ask = hospital_reply(messages)
    assert ask.text.startswith("Dr. Sarah Johnson works in Cardiology.")
    messages += [{"role": "assistant", "content": ask.text}, user("it's p two zero zero one")]

    cancel = hospital_reply(messages)

    made = [{"name": c.name, "arguments": json.loads(c.arguments)} for c in cancel.tool_calls]
    assert made == TASKS["entry_4"]["actions"]
    call = cancel.tool_calls[0]
    messages += [
        assistant_calls([{"id": call.id, "name": call.name, "arguments": call.arguments}]),
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": json.dumps(
                {"message": "Appointment cancelled successfully", "status": "cancelled"}
            ),
        },
    ]
    done = hospital_reply(messages)
    assert not done.tool_calls
    assert done.text == (
        "Your appointment with Dr. Sarah Johnson on January 15 at 9:00 AM is now cancelled."
    )


def test_hospital_cancel_without_date_looks_the_appointment_up_first() -> None:
    messages: list[dict[str, Any]] = [user("this is john smith please cancel my appointment")]
    lookup = hospital_reply(messages)
    assert [c.name for c in lookup.tool_calls] == ["get_appointment"]
    call = lookup.tool_calls[0]
    # Benchforce's get_appointment returns no date or time: the seed data fills them in.
    result = {
        "appointment_id": "A3001",
        "patient_id": "P2001",
        "patient_name": "John Smith",
        "doctor_id": "D1002",
        "doctor_name": None,
    }
    messages += [
        assistant_calls([{"id": call.id, "name": call.name, "arguments": call.arguments}]),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)},
    ]

    cancel = hospital_reply(messages)

    assert [json.loads(c.arguments) for c in cancel.tool_calls] == [
        {
            "patient_identifier": "John Smith",
            "doctor_identifier": "Dr. Sarah Johnson",
            "appointment_date": "2024-01-15",
            "appointment_time": "9:00 AM",
        }
    ]


def test_hospital_apologises_for_an_error_result() -> None:
    messages: list[dict[str, Any]] = [user("lab results for patient p nine nine nine nine")]
    call = hospital_reply(messages).tool_calls[0]
    assert json.loads(call.arguments) == {"patient_identifier": "P9999"}
    messages += [
        assistant_calls([{"id": call.id, "name": call.name, "arguments": call.arguments}]),
        {"role": "tool", "tool_call_id": call.id, "content": "Error: Patient 'P9999' not found"},
    ]

    reply = hospital_reply(messages)

    assert reply.text == "I'm sorry, I couldn't get those lab results: Patient P9999 not found."


def test_hospital_only_calls_offered_tools() -> None:
    request = ChatRequest(
        model="parley-simulator",
        messages=[user("what are john smith's lab results")],
        tool_names=frozenset({"get_doctor_info"}),
    )
    reply = HospitalPolicy.load().respond(request)
    assert not reply.tool_calls
    assert "can't get those lab results" in reply.text


def test_hospital_parallel_tool_calls_false_sends_one_call_per_step() -> None:
    request = ChatRequest(
        model="parley-simulator",
        messages=[user("emily taylor needs her current medications and recent lab results")],
        tool_names=frozenset(SCHEMAS),
        parallel_tool_calls=False,
    )
    reply = HospitalPolicy.load().respond(request)
    assert [c.name for c in reply.tool_calls] == ["get_patient_medications"]


# ---------------------------------------------------------------- spoken-text parsing


@pytest.mark.parametrize(
    ("text", "date", "time"),
    [
        ("on january fifteenth at nine a m", "2024-01-15", "9:00 AM"),
        (
            "the twenty fifth of january twenty twenty four at two thirty pm",
            "2024-01-25",
            "2:30 PM",
        ),
        ("2024-02-01 at 10:00 AM", "2024-02-01", "10:00 AM"),
        ("jan 15th 2024 at 9am", "2024-01-15", "9:00 AM"),
        ("may i ask something at noon", None, "12:00 PM"),
        ("call me at five five five nine eight seven six", None, None),
    ],
)
def test_dates_and_times_in_stt_text(text: str, date: str | None, time: str | None) -> None:
    assert find_date(text) == date
    assert find_time(text) == time


def test_phone_numbers_in_stt_text() -> None:
    assert find_phone(tokens("at five five five nine eight seven six"))[0] == "555-9876"
    assert find_phone(tokens("at 555-1022 please"))[0] == "555-1022"


# ---------------------------------------------------------------- latency profiles and faults

STREAM_BODY = {
    "model": "parley-simulator",
    "stream": True,
    "messages": [{"role": "user", "content": "one two three four five six seven eight"}],
}


async def test_faults_change_at_runtime_and_bad_ones_are_refused(
    simulator: SimulatorServer, client: httpx.AsyncClient
) -> None:
    faults = await client.post(root(simulator, "/simulator/faults"), json={"error_rate": 1.0})
    assert faults.status_code == 200 and faults.json()["error_rate"] == 1.0
    failed = await client.post("/chat/completions", json=STREAM_BODY)
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "server_error"
    for bad in ({"error_rate": 2}, {"nonsense": 1}, [1]):
        response = await client.post(root(simulator, "/simulator/faults"), json=bad)
        assert response.status_code == 400
    assert simulator.faults.error_rate == 1.0  # a refused change changes nothing
    simulator.set_faults(error_rate=0.0, unhealthy=True)
    health = await client.get(root(simulator, "/health"))
    assert health.status_code == 503
    assert (await client.get("/models")).json()["data"] == []
    stats = (await client.get(root(simulator, "/simulator/stats"))).json()
    assert stats["faults_injected"] == {"error": 1}


async def test_a_stall_delays_the_first_token_and_slow_mode_every_token(
    simulator: SimulatorServer, client: httpx.AsyncClient
) -> None:
    async def ttft_s() -> float:
        started = time.perf_counter()
        async with client.stream("POST", "/chat/completions", json=STREAM_BODY) as response:
            async for line in response.aiter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    return time.perf_counter() - started
        raise AssertionError("no token")

    simulator.set_faults(stall_rate=1.0, stall_ms=300)
    assert await ttft_s() >= 0.3
    simulator.set_faults(stall_rate=0.0, slow_factor=40)  # 5 ms -> 200 ms
    assert 0.2 <= await ttft_s() < 0.3


async def test_a_stream_can_drop_its_connection_after_n_tokens(
    simulator: SimulatorServer, client: httpx.AsyncClient
) -> None:
    simulator.set_faults(disconnect_after_tokens=2)
    received = []
    with pytest.raises(httpx.HTTPError):
        async with client.stream("POST", "/chat/completions", json=STREAM_BODY) as response:
            async for line in response.aiter_lines():
                received.append(line)
    assert not any("[DONE]" in line for line in received)
    assert sum('"content":"' in line for line in received) <= 3  # role delta + 2 tokens
    assert simulator.stats.faults_injected == {"disconnect": 1}


async def test_latency_profiles_draw_ttft_around_its_median() -> None:
    settings = SimulatorSettings(ttft_ms=40, itl_ms=1, ttft_sigma=0.5, seed=3)
    async with SimulatorServer(settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            samples = []
            for _ in range(15):
                started = time.perf_counter()
                body = {**STREAM_BODY, "stream": False}
                assert (await http.post("/chat/completions", json=body)).status_code == 200
                samples.append(time.perf_counter() - started)
    samples.sort()
    assert samples[-1] > 1.5 * samples[0]  # a spread, not one fixed delay
    assert 0.02 < samples[len(samples) // 2] < 0.12
