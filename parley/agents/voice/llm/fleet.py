"""An LLM provider over a pool of OpenAI-compatible servers: routing, failover, metrics.

Per request (one LLM step of a turn) :class:`FleetLLM` asks the pool's
:class:`~parley.platform.fleet.router.FleetRouter` for a server (affinity, least-loaded, see
there), streams from it and moves the request to another server when it fails **before its
first token**: an HTTP error, a refused connection, or no first token (text or tool-call
delta) within ``ttft_deadline_ms``. Nothing is yielded before the first token, so a failover
never repeats text to the caller. A stream that breaks *after* its first token cannot move
(the caller may have heard it): it raises :class:`LLMError` and the session ends the reply
with what was already said. At most ``max_attempts`` servers are tried.

Every request's route is recorded: ``LLMDone.route`` (or ``LLMError.route``) =
``{"server", "reason", "attempts": [{"server", "reason", "outcome", "ms", "error"}],
"ttft_ms"}``; ``outcome`` is ``ok``, ``error``, ``ttft_deadline`` or ``broken_stream``.
Metrics go to :mod:`parley.platform.fleet.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
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
        Raises :class:`LLMError` (with ``route``) when no server answered or a stream broke."""
        if self.refresh is not None:
            await self.refresh()
        pool = self.settings.pool
        attempts: list[dict[str, Any]] = []
        tried: set[Any] = set()
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
            opened = await self._open(state, messages, tools, attempt)
            if opened is None:
                continue  # failed before its first token: try another server
            first, chunks, started, first_at = opened
            async for chunk in self._relay(state, first, chunks, started, first_at, attempts):
                yield chunk
            return
        route = self._route(attempts, ttft_ms=None)
        tried_text = ", ".join(f"{a['server']}: {a.get('error') or a['outcome']}" for a in attempts)
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
            messages=messages, tools=tools, on_first_token=first_token.set
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
            else:
                first = await next_chunk  # a tool-call response: its first delta has arrived
        except LLMError as exc:
            outcome, error = "error", str(exc)
        except StopAsyncIteration:
            outcome, error = "error", "empty response"
        except BaseException:
            next_chunk.cancel()
            token_seen.cancel()
            await self._abandon(state, chunks, started, ok=None)
            raise
        finally:
            token_seen.cancel()
        attempt["ms"] = round((time.monotonic() - started) * 1000, 1)
        if outcome != "ok":
            next_chunk.cancel()
            with contextlib.suppress(BaseException):
                await next_chunk
            attempt["outcome"], attempt["error"] = outcome, error[:300]
            metrics.LLM_ERRORS.labels(pool, state.name, outcome).inc()
            await self._abandon(state, chunks, started, ok=False, error=error)
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
        attempts: list[dict[str, Any]],
    ) -> AsyncIterator[LLMChunk]:
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
                        route=self._route(attempts, ttft_ms=ttft_ms),
                    )
                    return
                yield chunk
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    ok = True
                    return
                except LLMError as exc:
                    ok, error = False, str(exc)
                    attempts[-1].update(outcome="broken_stream", error=error[:300])
                    metrics.LLM_ERRORS.labels(pool, state.name, "broken_stream").inc()
                    raise LLMError(
                        f"the stream from {state.name} broke after its first token: {exc}",
                        route=self._route(attempts, ttft_ms=ttft_ms),
                    ) from exc
                now = time.monotonic()
                if isinstance(chunk, TextDelta):
                    gaps.append((now - last) * 1000)
                    metrics.LLM_ITL.labels(pool, state.name).observe(now - last)
                last = now
        finally:
            await self._abandon(
                state, chunks, started, ok=ok, error=error, ttft_ms=ttft_ms, itl_ms=gaps
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
    ) -> None:
        """Close a stream (idempotent) and tell the router and the metrics how it ended."""
        with contextlib.suppress(BaseException):
            await chunks.aclose()  # type: ignore[attr-defined]
        self.router.end(state, ok=ok, ttft_ms=ttft_ms, itl_ms=itl_ms or (), error=error)
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
            "ttft_ms": round(ttft_ms, 1) if ttft_ms is not None else None,
        }

    async def aclose(self) -> None:
        """Close every server's HTTP client and release the conversation's affinity."""
        self.router.forget(self.affinity_key)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
