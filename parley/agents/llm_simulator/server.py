"""The LLM simulator's HTTP server: OpenAI-compatible chat completions over aiohttp.

Endpoints:

* ``GET /health`` — ``{"status": "ok", "simulator": true, "name": ..., "models": [...]}``.
* ``GET /v1/models`` — OpenAI model list; ids contain "simulator", ``owned_by`` is
  ``parley-llm-simulator``.
* ``POST /v1/chat/completions`` — ``stream: true`` answers Server-Sent Events, one
  ``data: {chat.completion.chunk}`` line per delta and ``data: [DONE]`` at the end, shaped like
  vLLM's: after ``ttft_ms`` the role delta and the first token, then one token every
  ``itl_ms``. Text is split into word-sized tokens; a tool call's first delta carries
  ``index``, ``id``, ``type``, ``function.name`` and ``arguments: ""``, and later deltas carry
  argument fragments. ``finish_reason`` is ``"tool_calls"`` or ``"stop"`` (``"length"`` if
  ``max_tokens`` cut the text). With ``stream_options.include_usage`` a last chunk with empty
  ``choices`` carries ``usage``. ``stream: false`` answers one ``chat.completion`` object
  after the same total delay. Bad requests get OpenAI-style error JSON with 400, unknown
  models 404. Token counts are whitespace word counts, not a real tokenizer's.
  ``continue_final_message: true`` (vLLM's extension, with ``add_generation_prompt: false``)
  continues the final assistant message: the policy answers the messages before it and only
  the part of that deterministic reply after the given prefix is streamed (how the fleet
  resumes a reply on another server after a mid-stream failure).
* ``POST /simulator/scripts/{key}`` (body: a script, see
  :class:`~parley.agents.llm_simulator.policies.Script`) and ``DELETE`` of the same path —
  register or drop a test script, selected with ``model="simulator-script/{key}"``.
* ``GET /simulator/stats`` — counters (requests, streams started/completed/aborted, faults).
* ``GET|POST /simulator/faults`` — read or change the fault injection of the running server
  (:class:`Faults`; a POST body updates the fields it names), so a test or a benchmark can
  break and heal a server without restarting it.

Latency profile: per request, TTFT = ``ttft_ms`` x LogNormal(0, ``ttft_sigma``) and each
inter-token gap = ``itl_ms`` x LogNormal(0, ``itl_sigma``) (``ttft_ms``/``itl_ms`` are the
medians; sigma 0 = fixed; sigma 0.3 puts p95 at about 1.64 x the median), both multiplied by
``Faults.slow_factor``. Draws come from one ``random.Random(seed)`` per server.

Every response carries ``system_fingerprint="parley-llm-simulator"``. The server only sleeps
and writes on the event loop; policies are pure functions of the request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from parley.agents.llm_simulator.policies import (
    ChatRequest,
    PlannedToolCall,
    PolicyRouter,
    Reply,
    ScriptError,
    ScriptRegistry,
    UnknownModelError,
    message_text,
    new_call_id,
    offered_tool_names,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ROUTER_KEY",
    "SETTINGS_KEY",
    "SIMULATOR_NAME",
    "STATS_KEY",
    "SYSTEM_FINGERPRINT",
    "SimulatorServer",
    "Faults",
    "SimulatorSettings",
    "SimulatorStats",
    "create_app",
    "run",
]

#: How the simulator names itself in logs and in ``/health``.
SIMULATOR_NAME = "Parley LLM simulator (not a real model)"
#: ``system_fingerprint`` of every response, and ``owned_by`` of every listed model.
SYSTEM_FINGERPRINT = "parley-llm-simulator"

_ROLES = {"system", "developer", "user", "assistant", "tool"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    """Fault injection, drawn per request.

    ``error_rate``: share of completions answered at once with HTTP 500 (OpenAI error JSON).
    ``stall_rate`` / ``stall_ms``: share of streams that stall this long before the first
    token (then go on normally); with ``stall_after_tokens`` N the stall comes after the
    first N token deltas instead (a server that freezes mid-reply).
    ``disconnect_after_tokens`` / ``disconnect_rate``: share of streams whose connection is
    dropped after that many token deltas (no ``[DONE]``).
    ``slow_factor``: multiplies TTFT and ITL ("slow mode"). ``unhealthy``: ``/health`` answers
    503 and ``/v1/models`` lists no model (completions still work: a half-broken server).
    """

    error_rate: float = 0.0
    stall_rate: float = 0.0
    stall_ms: float = 0.0
    stall_after_tokens: int | None = None
    disconnect_after_tokens: int | None = None
    disconnect_rate: float = 1.0
    slow_factor: float = 1.0
    unhealthy: bool = False

    def __post_init__(self) -> None:
        for name in ("error_rate", "stall_rate", "disconnect_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if self.stall_ms < 0 or self.slow_factor <= 0:
            raise ValueError("stall_ms must be >= 0 and slow_factor > 0")
        for name in ("stall_after_tokens", "disconnect_after_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with ``changes`` applied. Raises ``ValueError`` for unknown fields or values."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorSettings:
    """Where the simulator listens and how fast its "model" is.

    ``ttft_ms``: delay from request to first token (default 150 ms, in the range of a warm
    vLLM 8B model on one GPU). ``itl_ms``: delay between tokens (15 ms ≈ 65 tokens/s).
    ``model``: the served model id; it must contain "simulator".
    """

    host: str = "127.0.0.1"
    port: int = 8100
    ttft_ms: float = 150.0
    itl_ms: float = 15.0
    ttft_sigma: float = 0.0
    itl_sigma: float = 0.0
    seed: int | None = None
    faults: Faults = field(default_factory=Faults)
    model: str = "parley-simulator"

    def __post_init__(self) -> None:
        if "simulator" not in self.model:
            raise ValueError("the simulator's model id must contain 'simulator'")
        if self.ttft_ms < 0 or self.itl_ms < 0:
            raise ValueError("ttft_ms and itl_ms must be >= 0")
        if self.ttft_sigma < 0 or self.itl_sigma < 0:
            raise ValueError("ttft_sigma and itl_sigma must be >= 0")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be in 0..65535")


@dataclass(slots=True)
class SimulatorStats:
    """Counters for tests and ``/simulator/stats``.

    ``streams_aborted`` counts streams whose client went away before ``[DONE]`` was written.
    ``peers`` holds one ``host:port`` per client connection seen (keep-alive reuse shows as
    one peer). ``recent_requests`` keeps the last 100 request bodies as received.
    """

    requests: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_aborted: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    peers: set[str] = field(default_factory=set)
    recent_requests: deque[Any] = field(default_factory=lambda: deque(maxlen=100))

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
            "streams_aborted": self.streams_aborted,
            "connections": len(self.peers),
            "faults_injected": dict(self.faults_injected),
        }

    def fault(self, kind: str) -> None:
        self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1


SETTINGS_KEY = web.AppKey("parley_simulator_settings", SimulatorSettings)
ROUTER_KEY = web.AppKey("parley_simulator_router", PolicyRouter)
STATS_KEY = web.AppKey("parley_simulator_stats", SimulatorStats)


@dataclass(slots=True)
class _Runtime:
    """The mutable part of a running server: its faults and its random source."""

    faults: Faults
    rng: random.Random


RUNTIME_KEY = web.AppKey("parley_simulator_runtime", _Runtime)
_STARTED_KEY = web.AppKey("parley_simulator_started", int)


# ---------------------------------------------------------------- request validation


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class _Completion:
    chat: ChatRequest
    stream: bool
    include_usage: bool
    max_tokens: int | None
    #: The text of the final assistant message to continue (vLLM's
    #: ``continue_final_message``), ``None`` for an ordinary request.
    prefix: str | None = None


def _optional_bool(body: dict[str, Any], name: str, *, default: bool) -> bool:
    """``body[name]`` as a boolean, ``default`` when absent or null; 400 otherwise."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _BadRequest(f"'{name}' must be a boolean.", name)
    return value


def _parse_completion(body: Any, default_model: str) -> _Completion:
    """Validate a chat-completions body. Raises :class:`_BadRequest`."""
    if not isinstance(body, dict):
        raise _BadRequest("The request body must be a JSON object.")
    model = body.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise _BadRequest("'model' must be a non-empty string.", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty list of messages.", "messages")
    for i, message in enumerate(messages):
        _check_message(message, f"messages[{i}]")
    tools = body.get("tools")
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise _BadRequest("'tools' must be a list.", "tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise _BadRequest(
                f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}.",
                f"tools[{i}]",
            )
    stream = _optional_bool(body, "stream", default=False)
    stream_options = body.get("stream_options")
    include_usage = False
    if stream_options is not None:
        if not stream:
            raise _BadRequest(
                "'stream_options' is only allowed when 'stream' is true.", "stream_options"
            )
        if not isinstance(stream_options, dict):
            raise _BadRequest("'stream_options' must be an object.", "stream_options")
        include_usage = bool(stream_options.get("include_usage", False))
    n = body.get("n", 1)
    if n not in (1, None) or isinstance(n, bool):
        raise _BadRequest("Only n=1 is supported.", "n")
    max_tokens = None
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _BadRequest(f"'{name}' must be a positive integer.", name)
        max_tokens = value if max_tokens is None else min(max_tokens, value)
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = body.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (low <= value <= high)
        ):
            raise _BadRequest(f"'{name}' must be a number from {low:g} to {high:g}.", name)
    parallel = _optional_bool(body, "parallel_tool_calls", default=True)
    tool_choice = body.get("tool_choice")
    if tool_choice is not None and not (
        tool_choice in ("none", "auto", "required") or isinstance(tool_choice, dict)
    ):
        raise _BadRequest(
            "'tool_choice' must be 'none', 'auto', 'required' or an object.", "tool_choice"
        )
    names = frozenset() if tool_choice == "none" else offered_tool_names(tools)
    prefix = None
    if _optional_bool(body, "continue_final_message", default=False):
        # vLLM's rules: the final message is the assistant's, and no generation prompt.
        if _optional_bool(body, "add_generation_prompt", default=True):
            raise _BadRequest(
                "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
                "continue_final_message",
            )
        last = messages[-1]
        if last.get("role") != "assistant" or len(messages) < 2:
            raise _BadRequest(
                "'continue_final_message' needs a final assistant message after the prompt.",
                "continue_final_message",
            )
        prefix = message_text(last)
        messages = messages[:-1]
    return _Completion(
        chat=ChatRequest(
            model=model, messages=messages, tool_names=names, parallel_tool_calls=parallel
        ),
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        prefix=prefix,
    )


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise _BadRequest(f"{where} must be an object.", where)
    role = message.get("role")
    if role not in _ROLES:
        raise _BadRequest(f"{where}.role must be one of {', '.join(sorted(_ROLES))}.", where)
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            if not (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                raise _BadRequest(f"{where}.content: only text parts are supported.", where)
    elif content is not None and not isinstance(content, str):
        raise _BadRequest(f"{where}.content must be a string or a list of text parts.", where)
    if role == "assistant":
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list):
                raise _BadRequest(f"{where}.tool_calls must be a list.", where)
            for call in tool_calls:
                function = call.get("function") if isinstance(call, dict) else None
                if not (
                    isinstance(function, dict)
                    and isinstance(function.get("name"), str)
                    and isinstance(function.get("arguments", ""), str)
                ):
                    raise _BadRequest(
                        f"{where}.tool_calls entries need function.name and "
                        "function.arguments strings.",
                        where,
                    )
        elif content is None:
            raise _BadRequest(f"{where} needs 'content' or 'tool_calls'.", where)
    elif role == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            raise _BadRequest(f"{where}.tool_call_id is required for tool messages.", where)
        if content is None:
            raise _BadRequest(f"{where}.content is required.", where)
    elif content is None:
        raise _BadRequest(f"{where}.content is required.", where)


def _error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "server_error" if status >= 500 else "invalid_request_error",
                "param": param,
                "code": code,
            }
        },
        status=status,
    )


# ---------------------------------------------------------------- handlers


async def _health(request: web.Request) -> web.Response:
    router = request.app[ROUTER_KEY]
    if request.app[RUNTIME_KEY].faults.unhealthy:
        return web.json_response(
            {"status": "unhealthy", "simulator": True, "name": SIMULATOR_NAME}, status=503
        )
    return web.json_response(
        {"status": "ok", "simulator": True, "name": SIMULATOR_NAME, "models": router.model_ids()}
    )


async def _faults(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    if request.method == "POST":
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of fault fields")
            runtime.faults = runtime.faults.updated(changes)
        except ValueError as exc:
            return _error(400, str(exc))
    return web.json_response(dataclasses.asdict(runtime.faults))


async def _models(request: web.Request) -> web.Response:
    router = request.app[ROUTER_KEY]
    created = request.app[_STARTED_KEY]
    if request.app[RUNTIME_KEY].faults.unhealthy:
        return web.json_response({"object": "list", "data": []})
    return web.json_response(
        {
            "object": "list",
            "data": [
                {
                    "id": model,
                    "object": "model",
                    "created": created,
                    "owned_by": SYSTEM_FINGERPRINT,
                    "simulator": True,
                }
                for model in router.model_ids()
            ],
        }
    )


async def _register_script(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "The request body is not valid JSON.")
    try:
        model = request.app[ROUTER_KEY].scripts.register_json(key, body)
    except ScriptError as exc:
        return _error(400, str(exc))
    turns = len(body["turns"])
    return web.json_response({"model": model, "turns": turns}, status=201)


async def _delete_script(request: web.Request) -> web.Response:
    if request.app[ROUTER_KEY].scripts.remove(request.match_info["key"]):
        return web.Response(status=204)
    return _error(404, f"No script named {request.match_info['key']!r}.")


async def _stats(request: web.Request) -> web.Response:
    return web.json_response({"simulator": True, **request.app[STATS_KEY].as_json()})


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    stats = request.app[STATS_KEY]
    settings = request.app[SETTINGS_KEY]
    router = request.app[ROUTER_KEY]
    stats.requests += 1
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if peer:
        stats.peers.add(f"{peer[0]}:{peer[1]}")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "The request body is not valid JSON.")
    stats.recent_requests.append(body)
    try:
        completion = _parse_completion(body, settings.model)
    except _BadRequest as exc:
        return _error(400, exc.message, param=exc.param)
    try:
        policy = router.resolve(completion.chat)
    except UnknownModelError:
        return _error(
            404,
            f"The model `{completion.chat.model}` does not exist on the Parley LLM simulator. "
            f"Available: {', '.join(router.model_ids())}.",
            param="model",
            code="model_not_found",
        )
    runtime = request.app[RUNTIME_KEY]
    faults, rng = runtime.faults, runtime.rng
    if faults.error_rate and rng.random() < faults.error_rate:
        stats.fault("error")
        return _error(500, "Simulated server error (fault injection).", code="simulated_fault")
    reply = policy.respond(completion.chat)
    if completion.prefix is not None:
        reply = _continued(reply, completion.prefix)
    render = _Rendered.build(reply, completion, settings)
    render.ttft_s *= faults.slow_factor * _lognormal(rng, settings.ttft_sigma)
    render.itl_s *= faults.slow_factor
    render.itl_sigma = settings.itl_sigma
    render.rng = rng
    if completion.stream:
        if faults.stall_rate and rng.random() < faults.stall_rate:
            stats.fault("stall")
            if faults.stall_after_tokens:
                render.stall_after = faults.stall_after_tokens
                render.stall_s = faults.stall_ms / 1000.0
            else:
                render.ttft_s += faults.stall_ms / 1000.0
        if faults.disconnect_after_tokens is not None and rng.random() < faults.disconnect_rate:
            render.disconnect_after = faults.disconnect_after_tokens
        return await _stream(request, completion, render)
    await asyncio.sleep(render.total_delay_s())
    return web.json_response(render.completion_object(completion))


def _continued(reply: Reply, prefix: str) -> Reply:
    """The rest of ``reply`` after ``prefix``, the part of it the client already has
    (``continue_final_message``): the policy's reply is deterministic, so another server's
    partial answer to the same request is a prefix of it. A prefix that is not one (another
    model's text) gets the whole reply, as a stand-in for a real model's continuation."""
    if prefix and reply.text.startswith(prefix):
        return dataclasses.replace(reply, text=reply.text[len(prefix) :])
    return reply


@dataclass(slots=True)
class _Rendered:
    """A reply cut into stream deltas, with pacing and usage figures."""

    model: str
    text_tokens: list[str]
    calls: list[PlannedToolCall]
    finish_reason: str
    ttft_s: float
    itl_s: float
    prompt_tokens: int
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    itl_sigma: float = 0.0
    rng: random.Random | None = None
    disconnect_after: int | None = None  # drop the connection after this many token deltas
    stall_after: int | None = None  # stall ``stall_s`` after this many token deltas
    stall_s: float = 0.0

    def gap_s(self) -> float:
        """One inter-token gap (the latency profile's ITL draw)."""
        if self.rng is None or not self.itl_sigma:
            return self.itl_s
        return self.itl_s * _lognormal(self.rng, self.itl_sigma)

    @classmethod
    def build(cls, reply: Reply, completion: _Completion, settings: SimulatorSettings) -> _Rendered:
        tokens = re.findall(r"\s*\S+|\s+", reply.text)
        finish_reason = reply.resolved_finish_reason
        if completion.max_tokens is not None and len(tokens) > completion.max_tokens:
            tokens = tokens[: completion.max_tokens]
            finish_reason = "length"
        calls = [
            call if call.id else PlannedToolCall(call.name, call.arguments, new_call_id())
            for call in reply.tool_calls
        ]
        ttft = settings.ttft_ms if reply.ttft_ms is None else reply.ttft_ms
        itl = settings.itl_ms if reply.itl_ms is None else reply.itl_ms
        prompt_tokens = sum(len(message_text(m).split()) for m in completion.chat.messages)
        return cls(
            model=completion.chat.model,
            text_tokens=tokens,
            calls=calls,
            finish_reason=finish_reason,
            ttft_s=ttft / 1000.0,
            itl_s=itl / 1000.0,
            prompt_tokens=prompt_tokens,
        )

    def deltas(self) -> list[dict[str, Any]]:
        """Every token-carrying delta in order (the role delta is not included)."""
        deltas: list[dict[str, Any]] = [{"content": token} for token in self.text_tokens]
        for index, call in enumerate(self.calls):
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            for fragment in re.findall(r"\s*\w+|\s*[^\w\s]+|\s+", call.arguments):
                deltas.append(
                    {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
                )
        return deltas

    def usage(self) -> dict[str, int]:
        completion_tokens = len(self.deltas())
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def total_delay_s(self) -> float:
        return self.ttft_s + self.itl_s * max(0, len(self.deltas()) - 1)

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    def usage_chunk(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [],
            "usage": self.usage(),
        }

    def completion_object(self, completion: _Completion) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.text_tokens) or None,
        }
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.calls
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage(),
        }


def _lognormal(rng: random.Random, sigma: float) -> float:
    """A LogNormal(0, sigma) factor (median 1); exactly 1 when sigma is 0."""
    return rng.lognormvariate(0.0, sigma) if sigma else 1.0


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def _stream(
    request: web.Request, completion: _Completion, render: _Rendered
) -> web.StreamResponse:
    stats = request.app[STATS_KEY]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)  # headers now; the body is paced below
    stats.streams_started += 1
    try:
        await asyncio.sleep(render.ttft_s)
        await response.write(_sse(render.chunk({"role": "assistant", "content": ""})))
        for position, delta in enumerate(render.deltas()):
            if position == render.disconnect_after:
                stats.fault("disconnect")
                stats.streams_aborted += 1
                if request.transport is not None:
                    request.transport.close()  # mid-stream: no more chunks, no [DONE]
                return response
            if position:
                await asyncio.sleep(render.gap_s())
            if position == render.stall_after:
                await asyncio.sleep(render.stall_s)
            await response.write(_sse(render.chunk(delta)))
        await response.write(_sse(render.chunk({}, finish_reason=render.finish_reason)))
        if completion.include_usage:
            await response.write(_sse(render.usage_chunk()))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionResetError:
        stats.streams_aborted += 1
        logger.debug("client went away during stream %s", render.id)
        return response
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client disconnects (handler_cancellation).
        stats.streams_aborted += 1
        logger.debug("stream %s cancelled (client disconnected)", render.id)
        raise
    stats.streams_completed += 1
    return response


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """Answer aiohttp's own 404/405 with OpenAI-style error JSON."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, f"{exc.reason}: {request.method} {request.path}")
    return response


def create_app(
    settings: SimulatorSettings | None = None, *, scripts: ScriptRegistry | None = None
) -> web.Application:
    """The simulator as an aiohttp application (seed data is read here, before serving).

    ``app[ROUTER_KEY].scripts`` is the script registry, ``app[STATS_KEY]`` the counters.
    For prompt disconnect detection run it with ``handler_cancellation=True``.
    """
    settings = settings or SimulatorSettings()
    app = web.Application(middlewares=[_json_errors], client_max_size=8 * 1024 * 1024)
    app[SETTINGS_KEY] = settings
    app[ROUTER_KEY] = PolicyRouter(model=settings.model, scripts=scripts)
    app[STATS_KEY] = SimulatorStats()
    app[RUNTIME_KEY] = _Runtime(faults=settings.faults, rng=random.Random(settings.seed))
    app[_STARTED_KEY] = int(time.time())
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_post("/simulator/scripts/{key}", _register_script)
    app.router.add_delete("/simulator/scripts/{key}", _delete_script)
    app.router.add_get("/simulator/stats", _stats)
    app.router.add_get("/simulator/faults", _faults)
    app.router.add_post("/simulator/faults", _faults)
    return app


class SimulatorServer:
    """The simulator on a real socket for tests: ``async with SimulatorServer() as server``.

    Binds ``host`` (default 127.0.0.1) on ``port`` (default 0: an ephemeral port) whatever
    ``settings.host``/``settings.port`` say; ``base_url`` is ``http://127.0.0.1:PORT/v1``.
    """

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.settings = settings or SimulatorSettings()
        self.app = create_app(self.settings)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("SimulatorServer is not started")
        return f"http://{self._host}:{self.port}/v1"

    @property
    def stats(self) -> SimulatorStats:
        return self.app[STATS_KEY]

    @property
    def scripts(self) -> ScriptRegistry:
        return self.app[ROUTER_KEY].scripts

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def faults(self) -> Faults:
        return self.app[RUNTIME_KEY].faults

    def set_faults(self, **changes: Any) -> Faults:
        """Change the running server's fault injection (see :class:`Faults`)."""
        runtime = self.app[RUNTIME_KEY]
        runtime.faults = runtime.faults.updated(changes)
        return runtime.faults

    def register_script(
        self,
        key: str,
        turns: Any,
        *,
        ttft_ms: float | None = None,
        itl_ms: float | None = None,
    ) -> str:
        """Register a test script; returns the model name to request (see ``Script``)."""
        return self.scripts.register(key, turns, ttft_ms=ttft_ms, itl_ms=itl_ms)

    async def wait_for(
        self, predicate: Callable[[SimulatorStats], bool], *, timeout_s: float = 5.0
    ) -> bool:
        """Poll ``predicate(stats)`` every 10 ms until true (True) or ``timeout_s`` (False)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(self.stats):
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def start(self) -> None:
        runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        logger.info("%s listening on %s", SIMULATOR_NAME, self.base_url)

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def run(settings: SimulatorSettings) -> None:
    """Serve the simulator on ``settings.host:settings.port`` until interrupted (blocking)."""
    app = create_app(settings)
    logger.warning(
        "%s serving model %r on http://%s:%d/v1 (ttft %g ms, itl %g ms, faults %s)",
        SIMULATOR_NAME,
        settings.model,
        settings.host,
        settings.port,
        settings.ttft_ms,
        settings.itl_ms,
        settings.faults,
    )
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        handler_cancellation=True,
        print=None,
        access_log=None,
    )
