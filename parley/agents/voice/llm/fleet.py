"""An LLM provider over a pool of OpenAI-compatible servers: routing, failover, metrics.

Per request (one LLM step of a turn) :class:`FleetLLM` asks the pool's
:class:`~parley.platform.fleet.router.FleetRouter` for a server (affinity, least-loaded, see
there), streams from it and moves the request to another server when it fails:

* **before its first token**: an HTTP error, a refused connection, or no first token (text
  or tool-call delta) within ``ttft_deadline_ms``. Nothing is yielded before the first token,
  so the new server simply answers the request.
* **after it** (mid-stream): the stream breaks (connection reset, server killed, cut before
  its last chunk) or stalls (no token within ``stall_timeout_ms``). The text already yielded
  stays where it is (the caller may have heard it); the request goes to another server with
  that text as a partial assistant message and vLLM's ``continue_final_message: true,
  add_generation_prompt: false``, so the new server *continues* it: the caller hears one
  answer, never a repeat. Tool-call deltas are only passed on complete (in
  :class:`LLMDone`), so a call cut mid-way is never run: the continuation asks again. The
  failed server cools down at once (:meth:`FleetRouter.record_failure`).

At most ``max_attempts`` servers are tried per request, all failovers counted. When none is
left, :class:`LLMError` is raised (the session then says its apology).

Every request's route is recorded: ``LLMDone.route`` (or ``LLMError.route``) =
``{"server", "reason", "attempts": [{"server", "reason", "outcome", "ms", "error",
"resumed_at_chars"}], "failovers", "midstream_failovers", "ttft_ms"}``; ``outcome`` is
``ok``, ``error``, ``ttft_deadline``, ``broken_stream`` or ``stall``; ``resumed_at_chars``
(on a continuing attempt) is how much text it continued. Metrics go to
:mod:`parley.platform.fleet.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from parley.agents.voice.llm.base import LLM, LLMError
from parley.agents.voice.llm.openai_compat import OpenAICompatLLM, OpenAICompatSettings
from parley.agents.voice.messages import LLMChunk, LLMDone, TextDelta
from parley.platform.fleet import metrics
from parley.platform.fleet.router import FleetRouter, ServerState


@dataclass(frozen=True)
class FleetSettings:
    """Request settings shared by the pool's servers (from the ``ModelPool`` row)."""

    pool: str
    model: str
    temperature: float = 0.2
    max_tokens: int = 300
    timeout_s: float = 30.0
    ttft_deadline_ms: float = 1500.0
    max_attempts: int = 3
    stall_timeout_ms: float = 2000.0


#: The request body fields that make vLLM continue the final (assistant) message instead of
#: starting a new one (vLLM's chat-completions extension; the simulator honours them too).
CONTINUE_FINAL_MESSAGE = {"continue_final_message": True, "add_generation_prompt": False}
#: Attempt outcomes of a server that failed after its first token.
MIDSTREAM_OUTCOMES = ("broken_stream", "stall")


class _StallWatch:
    """The inter-token deadline of one stream: every token (text or tool-call delta) pushes
    the running ``asyncio.timeout`` back by ``stall_s``."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self.deadline: asyncio.Timeout | None = None

    def touch(self) -> None:
        deadline = self.deadline
        if deadline is not None and not deadline.expired():
            deadline.reschedule(asyncio.get_running_loop().time() + self.stall_s)


class FleetLLM(LLM):
    """One call's LLM over a fleet; its conversation keeps server affinity.

    ``refresh``: awaited before each request so the router sees admin edits and active
    health checks (the Django glue passes one; benchmarks and tests may not).
    """

    name = "fleet"

    def __init__(
        self,
        *,
        settings: FleetSettings,
        router: FleetRouter,
        affinity_key: str | None = None,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.affinity_key = affinity_key or uuid.uuid4().hex
        self.refresh = refresh
        self._clients: dict[Any, OpenAICompatLLM] = {}

    def _client(self, state: ServerState) -> OpenAICompatLLM:
        """One HTTP client per server per call: connections stay warm between turns."""
        client = self._clients.get(state.id)
        config = state.config
        if client is None or client.settings.base_url != config.base_url:
            client = OpenAICompatLLM(
                OpenAICompatSettings(
                    base_url=config.base_url,
                    api_key=config.api_key or "not-needed",
                    model=self.settings.model,
                    temperature=self.settings.temperature,
                    max_tokens=self.settings.max_tokens,
                    timeout_s=self.settings.timeout_s,
                )
            )
            self._clients[state.id] = client
        return client

    async def stream(
        self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> AsyncIterator[LLMChunk]:
        """Stream one completion from the fleet (failover rules in the module docstring).
        Raises :class:`LLMError` (with ``route``) when no server answered, or a stream broke
        and no other server could continue it."""
        if self.refresh is not None:
            await self.refresh()
        pool = self.settings.pool
        attempts: list[dict[str, Any]] = []
        tried: set[Any] = set()
        emitted: list[str] = []  # the text yielded so far, whichever server sent it
        ttft_ms: float | None = None  # the request's: its first server that answered
        for _ in range(self.settings.max_attempts):
            choice = self.router.choose(self.affinity_key, exclude=tried)
            state = choice.server
            if state is None:
                break
            tried.add(state.id)
            if attempts:
                metrics.LLM_FAILOVERS.labels(pool, attempts[-1]["outcome"]).inc()
            attempt: dict[str, Any] = {"server": state.name, "reason": choice.reason}
            attempts.append(attempt)
            prefix = "".join(emitted)
            request_messages, extra_body = messages, None
            if prefix:
                # Resume after a mid-stream failure: the new server continues the text the
                # caller already has (vLLM's prefill of the assistant's reply).
                attempt["resumed_at_chars"] = len(prefix)
                request_messages = [*messages, {"role": "assistant", "content": prefix}]
                extra_body = CONTINUE_FINAL_MESSAGE
            watch = _StallWatch(self.settings.stall_timeout_ms / 1000)
            opened = await self._open(state, request_messages, tools, attempt, watch, extra_body)
            if opened is None:
                continue  # failed before its first token: try another server
            first, chunks, started, first_at = opened
            if ttft_ms is None:
                ttft_ms = (first_at - started) * 1000
            relay = self._relay(state, first, chunks, started, first_at, watch, attempts, ttft_ms)
            async with contextlib.aclosing(relay):
                async for chunk in relay:
                    if isinstance(chunk, TextDelta):
                        emitted.append(chunk.text)
                    yield chunk
            if attempt["outcome"] == "ok":
                return
            # Broken or stalled after its first token: nothing it sent is taken back, the
            # next server continues from there (a partial tool call is simply re-asked).
        route = self._route(attempts, ttft_ms=ttft_ms)
        tried_text = ", ".join(f"{a['server']}: {a.get('error') or a['outcome']}" for a in attempts)
        if emitted or any(a["outcome"] in MIDSTREAM_OUTCOMES for a in attempts):
            broken = next(a for a in attempts if a["outcome"] in MIDSTREAM_OUTCOMES)
            raise LLMError(
                f"the stream from {broken['server']} broke after its first token and no other "
                f"server of pool {pool!r} could continue it ({tried_text})",
                route=route,
            )
        raise LLMError(
            f"no server of pool {pool!r} answered"
            + (f" ({tried_text})" if tried_text else " (no usable server)"),
            route=route,
        )

    async def _open(
        self,
        state: ServerState,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        attempt: dict[str, Any],
        watch: _StallWatch,
        extra_body: dict[str, Any] | None,
    ) -> tuple[LLMChunk, AsyncIterator[LLMChunk], float, float] | None:
        """Start a stream and wait for its first token within the deadline. Returns the first
        chunk, the rest of the stream and the times; ``None`` when the server failed (the
        attempt says how, the router and metrics know)."""
        router, pool = self.router, self.settings.pool
        router.begin(state)
        metrics.LLM_INFLIGHT.labels(pool, state.name).inc()
        started = time.monotonic()
        first_token = asyncio.Event()
        chunks = self._client(state).stream(
            messages=messages,
            tools=tools,
            on_first_token=first_token.set,
            on_token=watch.touch,
            extra_body=extra_body,
        )
        next_chunk = asyncio.ensure_future(anext(chunks))
        token_seen = asyncio.ensure_future(first_token.wait())
        deadline_s = self.settings.ttft_deadline_ms / 1000
        outcome, error = "ok", ""
        try:
            done, _ = await asyncio.wait(
                {next_chunk, token_seen}, timeout=deadline_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                outcome, error = "ttft_deadline", f"no first token in {deadline_s * 1000:.0f} ms"
            elif next_chunk.done():
                first = next_chunk.result()
            else:
                # A tool-call response: its first delta has arrived, the chunk comes at its
                # end; from now on the stall deadline watches its deltas.
                async with asyncio.timeout(watch.stall_s) as deadline:
                    watch.deadline = deadline
                    first = await next_chunk
        except LLMError as exc:
            # Broken after a tool call's first delta: a mid-stream failure like any other.
            outcome = "broken_stream" if first_token.is_set() else "error"
            error = str(exc)
        except StopAsyncIteration:
            outcome, error = "error", "empty response"
        except TimeoutError:
            outcome, error = "stall", f"no token for {watch.stall_s * 1000:.0f} ms"
        except BaseException:
            next_chunk.cancel()
            token_seen.cancel()
            await self._abandon(state, chunks, started, ok=None)
            raise
        finally:
            watch.deadline = None
            token_seen.cancel()
        attempt["ms"] = round((time.monotonic() - started) * 1000, 1)
        if outcome != "ok":
            next_chunk.cancel()
            with contextlib.suppress(BaseException):
                await next_chunk
            attempt["outcome"], attempt["error"] = outcome, error[:300]
            metrics.LLM_ERRORS.labels(pool, state.name, outcome).inc()
            await self._abandon(
                state,
                chunks,
                started,
                ok=False,
                error=error,
                cool_down=outcome in MIDSTREAM_OUTCOMES,
            )
            return None
        first_at = time.monotonic()
        return first, chunks, started, first_at

    async def _relay(
        self,
        state: ServerState,
        first: LLMChunk,
        chunks: AsyncIterator[LLMChunk],
        started: float,
        first_at: float,
        watch: _StallWatch,
        attempts: list[dict[str, Any]],
        request_ttft_ms: float,
    ) -> AsyncGenerator[LLMChunk, None]:
        """Pass one server's stream on from its first chunk. A break or a stall (no token
        within ``stall_timeout_ms``) ends it quietly: the attempt's ``outcome`` says so
        (``broken_stream`` / ``stall``) and the router cools the server down."""
        pool = self.settings.pool
        ttft_ms = (first_at - started) * 1000
        metrics.LLM_TTFT.labels(pool, state.name).observe(ttft_ms / 1000)
        gaps: list[float] = []
        last = first_at
        ok: bool | None = None
        error = ""
        try:
            chunk: LLMChunk = first
            while True:
                if isinstance(chunk, LLMDone):
                    attempts[-1]["outcome"] = "ok"
                    ok = True
                    yield LLMDone(
                        tool_calls=chunk.tool_calls,
                        finish_reason=chunk.finish_reason,
                        model=chunk.model,
                        usage=chunk.usage,
                        route=self._route(attempts, ttft_ms=request_ttft_ms),
                    )
                    return
                yield chunk
                outcome = ""
                try:
                    async with asyncio.timeout(watch.stall_s) as deadline:
                        watch.deadline = deadline
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    outcome, error = "broken_stream", "stream ended without its last chunk"
                except LLMError as exc:
                    outcome, error = "broken_stream", str(exc)
                except TimeoutError:
                    outcome, error = "stall", f"no token for {watch.stall_s * 1000:.0f} ms"
                finally:
                    watch.deadline = None
                if outcome:
                    ok = False
                    attempts[-1].update(outcome=outcome, error=error[:300])
                    metrics.LLM_ERRORS.labels(pool, state.name, outcome).inc()
                    return
                now = time.monotonic()
                if isinstance(chunk, TextDelta):
                    gaps.append((now - last) * 1000)
                    metrics.LLM_ITL.labels(pool, state.name).observe(now - last)
                last = now
        finally:
            await self._abandon(
                state,
                chunks,
                started,
                ok=ok,
                error=error,
                ttft_ms=ttft_ms,
                itl_ms=gaps,
                cool_down=ok is False,
            )

    async def _abandon(
        self,
        state: ServerState,
        chunks: AsyncIterator[LLMChunk],
        started: float,
        *,
        ok: bool | None,
        error: str = "",
        ttft_ms: float | None = None,
        itl_ms: list[float] | None = None,
        cool_down: bool = False,
    ) -> None:
        """Close a stream (idempotent) and tell the router and the metrics how it ended.
        ``cool_down``: a mid-stream failure, the server cools down at once."""
        with contextlib.suppress(BaseException):
            await chunks.aclose()  # type: ignore[attr-defined]
        self.router.end(
            state, ok=ok, ttft_ms=ttft_ms, itl_ms=itl_ms or (), error=error, cool_down=cool_down
        )
        pool = self.settings.pool
        metrics.LLM_INFLIGHT.labels(pool, state.name).dec()
        outcome = "ok" if ok else ("cancelled" if ok is None else "error")
        metrics.LLM_REQUESTS.labels(pool, state.name, outcome).inc()

    def _route(self, attempts: list[dict[str, Any]], *, ttft_ms: float | None) -> dict[str, Any]:
        served = attempts[-1] if attempts and attempts[-1].get("outcome") == "ok" else None
        return {
            "pool": self.settings.pool,
            "server": served["server"] if served else None,
            "reason": attempts[0]["reason"] if attempts else "no_server",
            "attempts": [dict(a) for a in attempts],
            "failovers": max(0, len(attempts) - 1),
            "midstream_failovers": sum(
                1 for a in attempts[:-1] if a.get("outcome") in MIDSTREAM_OUTCOMES
            ),
            "ttft_ms": round(ttft_ms, 1) if ttft_ms is not None else None,
        }

    async def aclose(self) -> None:
        """Close every server's HTTP client and release the conversation's affinity."""
        self.router.forget(self.affinity_key)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
