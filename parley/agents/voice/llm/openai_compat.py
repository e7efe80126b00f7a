"""Streaming chat completions from any OpenAI-compatible server (vLLM, OpenAI, the simulator).

One :class:`OpenAICompatLLM` owns one ``openai.AsyncOpenAI`` client for its whole life, so the
HTTP keep-alive connection stays warm between turns; :meth:`OpenAICompatLLM.aclose` releases it.

Tool calls arrive as deltas (OpenAI Chat Completions streaming format): the first delta of a
call carries its ``index``, ``id``, ``type`` and ``function.name`` (and often an empty
``arguments``), the following deltas of the same ``index`` carry ``arguments`` fragments to be
concatenated. Servers differ at the edges, and all of these are accepted:

* the whole call (id, name, complete arguments) in a single delta;
* ``index`` omitted (some servers, for single calls): a delta without ``index`` continues the
  latest call unless it names a new function;
* parallel calls that all reuse ``index`` 0 and differ only by ``id`` (Ollama-style): a new
  ``id`` together with a function name at an index that already holds a named call opens a
  new call;
* no ``id`` at all: one is made up (``call_<24 hex>``) so tool results can still refer to it.

Retries are off by default (``max_retries=0``): the fleet layer fails over between endpoints,
and a hidden SDK retry would only add latency to a live call.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from parley.agents.voice.llm.base import LLM, LLMError
from parley.agents.voice.messages import LLMChunk, LLMDone, TextDelta, ToolCallRequest

logger = logging.getLogger(__name__)

__all__ = ["OpenAICompatLLM", "OpenAICompatSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAICompatSettings:
    """Where and how to call an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``base_url`` includes the ``/v1`` suffix (``http://127.0.0.1:8000/v1``). ``api_key`` is
    sent as a bearer token; self-hosted vLLM ignores it, hence the default. ``max_tokens``
    caps one response (a spoken answer is short). ``timeout_s`` bounds connecting and every
    wait for the next bytes of the stream, not the whole response. ``parallel_tool_calls``
    is sent only when not ``None`` and tools are offered (some servers reject the field).
    """

    base_url: str
    model: str
    api_key: str = field(default="not-needed", repr=False)
    temperature: float = 0.2
    max_tokens: int = 300
    timeout_s: float = 30.0
    max_retries: int = 0
    parallel_tool_calls: bool | None = None
    #: Ask for a last chunk with token counts (``stream_options.include_usage``; vLLM, OpenAI
    #: and Azure support it). Turn off for a server that rejects the option.
    include_usage: bool = True

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ValueError("base_url is required")
        if not self.model:
            raise ValueError("model is required")
        if self.max_tokens <= 0:
            raise ValueError("max_tokens must be positive")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")


class OpenAICompatLLM(LLM):
    """:class:`LLM` over ``openai.AsyncOpenAI`` streaming chat completions.

    ``stream()`` yields :class:`TextDelta` for every non-empty content delta, then exactly
    one :class:`LLMDone` with the accumulated tool calls, the ``finish_reason`` and the model
    name reported by the server. Every failure (refused connection, timeout, HTTP error, error
    event inside the stream, malformed chunk, stream cut before a ``finish_reason``) raises
    :class:`LLMError`, whose message names the endpoint and the HTTP status but never the API
    key. Cancelling the consuming task closes the HTTP response immediately.
    """

    name = "openai_compat"

    def __init__(self, settings: OpenAICompatSettings) -> None:
        self.settings = settings
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )

    async def stream(
        self,
        *,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        on_first_token: Callable[[], None] | None = None,
        on_token: Callable[[], None] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> AsyncIterator[LLMChunk]:
        """Stream one completion; see the class docstring for what is yielded and raised.

        ``on_first_token`` is called once, when the first text or tool-call delta arrives (a
        tool-call response yields nothing until its end: the fleet's TTFT deadline needs it);
        ``on_token`` on every such delta (the fleet's inter-token stall deadline).
        ``extra_body``: fields added to the request body beyond OpenAI's (vLLM's
        ``continue_final_message``...).
        """
        request = self._request(messages=messages, tools=tools)
        if extra_body:
            request["extra_body"] = extra_body
        calls = _ToolCallAccumulator()
        finish_reason: str | None = None
        model: str | None = None
        usage: dict[str, int] | None = None
        try:
            response = await self._client.chat.completions.create(**request)
            # ``async with`` closes the HTTP response on every exit: normal end, error, the
            # consumer's cancellation (raised at the ``await`` of the next chunk) and the
            # generator being closed early (GeneratorExit at a ``yield``).
            async with response as chunks:
                async for chunk in chunks:
                    model = model or getattr(chunk, "model", None)
                    # Usage arrives in its own chunk with no choices (``include_usage``);
                    # keep-alive chunks have no choices either: both fall through the loop.
                    chunk_usage = getattr(chunk, "usage", None)
                    if chunk_usage is not None:
                        usage = _usage(chunk_usage)
                    for choice in getattr(chunk, "choices", None) or ():
                        if getattr(choice, "index", 0) not in (0, None):
                            continue  # n=1 is requested; ignore stray extra choices
                        delta = getattr(choice, "delta", None)
                        if delta is not None:
                            if delta.content or delta.tool_calls:
                                if on_first_token is not None:
                                    on_first_token()
                                    on_first_token = None
                                if on_token is not None:
                                    on_token()
                            if delta.content:
                                yield TextDelta(text=delta.content)
                            for tool_delta in delta.tool_calls or ():
                                function = tool_delta.function
                                calls.add(
                                    index=getattr(tool_delta, "index", None),
                                    call_id=tool_delta.id,
                                    name=function.name if function else None,
                                    arguments=function.arguments if function else None,
                                )
                        if choice.finish_reason:
                            finish_reason = choice.finish_reason
        except openai.APIStatusError as exc:
            raise LLMError(self._status_message(exc)) from exc
        except openai.APITimeoutError as exc:
            raise LLMError(
                f"LLM request to {self.settings.base_url} timed out "
                f"(no data for {self.settings.timeout_s:g} s)"
            ) from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc.__context__
            detail = f": {self._redact(str(cause))}" if cause and str(cause) else ""
            raise LLMError(
                f"cannot connect to LLM endpoint {self.settings.base_url}{detail}"
            ) from exc
        except openai.APIError as exc:
            # An ``{"error": ...}`` event inside an otherwise successful stream.
            raise LLMError(
                f"LLM stream from {self.settings.base_url} failed: {self._redact(exc.message)}"
            ) from exc
        except json.JSONDecodeError as exc:
            raise LLMError(
                f"LLM stream from {self.settings.base_url} sent a malformed chunk: {exc}"
            ) from exc
        if finish_reason is None:
            raise LLMError(
                f"LLM stream from {self.settings.base_url} ended without a finish_reason "
                "(response cut short)"
            )
        yield LLMDone(
            tool_calls=calls.result(), finish_reason=finish_reason, model=model, usage=usage
        )

    async def aclose(self) -> None:
        """Close the pooled HTTP connections."""
        await self._client.close()

    # ------------------------------------------------------------------ helpers

    def _request(
        self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        settings = self.settings
        request: dict[str, Any] = {
            "model": settings.model,
            "messages": messages,
            "stream": True,
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
        }
        if settings.include_usage:
            request["stream_options"] = {"include_usage": True}
        if tools:
            request["tools"] = tools
            if settings.parallel_tool_calls is not None:
                request["parallel_tool_calls"] = settings.parallel_tool_calls
        return request

    def _status_message(self, exc: openai.APIStatusError) -> str:
        detail: Any = None
        body = exc.body
        if isinstance(body, dict):
            error = body.get("error", body)
            detail = error.get("message") if isinstance(error, dict) else error
        if not detail:
            detail = exc.message
        return self._redact(
            f"LLM endpoint {self.settings.base_url} answered HTTP {exc.status_code}: {detail}"
        )

    def _redact(self, text: str) -> str:
        """Remove the API key from ``text`` in case a server or proxy echoed it back."""
        key = self.settings.api_key
        if key and len(key) >= 4 and key in text:
            text = text.replace(key, "***")
        return text


def _usage(raw: Any) -> dict[str, int]:
    """The integer token counts of a usage object (OpenAI and vLLM send the same fields)."""
    fields = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {name: value for name in fields if isinstance(value := getattr(raw, name, None), int)}


@dataclass(slots=True)
class _PartialCall:
    index: int | None
    id: str = ""
    name: str = ""
    argument_parts: list[str] = field(default_factory=list)


class _ToolCallAccumulator:
    """Joins streamed tool-call deltas into complete calls (rules in the module docstring)."""

    def __init__(self) -> None:
        self._calls: list[_PartialCall] = []
        self._by_index: dict[int, int] = {}
        self._by_id: dict[str, int] = {}

    def add(
        self, *, index: int | None, call_id: str | None, name: str | None, arguments: str | None
    ) -> None:
        slot = self._slot(index=index, call_id=call_id, name=name)
        call = self._calls[slot]
        if call_id and not call.id:
            call.id = call_id
            self._by_id[call_id] = slot
        if name and not call.name:
            call.name = name
        if arguments:
            call.argument_parts.append(arguments)

    def result(self) -> tuple[ToolCallRequest, ...]:
        """The complete calls in stream order. Raises :class:`LLMError` for a nameless call."""
        requests = []
        for position, call in enumerate(self._calls):
            if not call.name:
                raise LLMError(f"LLM stream sent tool call #{position} without a function name")
            arguments = "".join(call.argument_parts)
            requests.append(
                ToolCallRequest(
                    id=call.id or f"call_{uuid.uuid4().hex[:24]}",
                    name=call.name,
                    # An argument-less call is "{}" in OpenAI's own output; "" would not parse.
                    arguments=arguments if arguments.strip() else "{}",
                )
            )
        return tuple(requests)

    def _slot(self, *, index: int | None, call_id: str | None, name: str | None) -> int:
        if index is None:
            if call_id and call_id in self._by_id:
                return self._by_id[call_id]
            if self._calls:
                latest = self._calls[-1]
                starts_new = bool(name) and bool(latest.name) and call_id != latest.id
                if not starts_new:
                    return len(self._calls) - 1
            return self._new(index)
        slot = self._by_index.get(index)
        if slot is None:
            return self._new(index)
        current = self._calls[slot]
        if call_id and current.id and call_id != current.id and name and current.name:
            return self._new(index)  # parallel calls sharing one index, told apart by id
        return slot

    def _new(self, index: int | None) -> int:
        self._calls.append(_PartialCall(index=index))
        slot = len(self._calls) - 1
        if index is not None:
            self._by_index[index] = slot
        return slot
