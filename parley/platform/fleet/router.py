"""Per-turn routing of LLM requests over a pool's servers, with passive health.

Pure bookkeeping, no I/O and no Django: :class:`FleetRouter` keeps, per server, the streams in
flight, recent TTFT/ITL samples and a health state machine, and picks a server for each LLM
request of a conversation:

1. **Affinity**: the server the conversation used last (vLLM's prefix cache holds its history)
   while it is usable and below ``max_streams``.
2. Otherwise the **least-loaded** usable server: fewest in-flight streams per unit of
   ``weight``, then lowest recent TTFT. The reason is recorded: ``new`` (first request of the
   conversation), ``spill_over`` (its server is at its limit), ``unhealthy`` (its server is
   cooling down or down), ``failover`` (its server just failed this request).
3. Every usable server at its limit: the least-loaded one anyway (``saturated``). No usable
   server: one cooling down (``last_resort``); every server down: none.

**Slow servers** are avoided like unhealthy ones while others are usable: a server whose
median recent TTFT (at least ``slow_min_samples`` samples) exceeds ``slow_ratio`` times the
fleet's median of those medians. Its conversations move (reason ``slow``); one request per
``slow_probe_s`` still goes to it (reason ``probe``), so the router learns when it is fast
again.

Health (consecutive failures of real requests or of the active checks; a success resets):

- ``healthy`` → ``cooldown`` after ``failure_threshold`` consecutive failures (or at once
  for a stream that broke or stalled after its first token): not chosen for
  ``cooldown_s`` (doubling on each new cooldown, up to ``max_cooldown_s``). When it expires
  the server is *half-open*: the next request may use it; success → healthy, failure → a
  longer cooldown.
- → ``down`` after ``down_after`` consecutive failures: chosen by nothing until a success
  (an active health check) brings it back.

Times are ``time.monotonic()`` seconds unless a name says ``_ms``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from statistics import median
from typing import Any

HEALTHY = "healthy"
COOLDOWN = "cooldown"
DOWN = "down"


@dataclass(frozen=True)
class ServerConfig:
    """One server as the router needs it. ``id`` must be unique within the router."""

    id: Any
    name: str
    base_url: str
    api_key: str = field(default="not-needed", repr=False)
    weight: int = 1
    max_streams: int = 64
    enabled: bool = True


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds of the health state machine (module docstring)."""

    failure_threshold: int = 3
    cooldown_s: float = 10.0
    max_cooldown_s: float = 120.0
    down_after: int = 12
    samples: int = 100  # recent TTFT/ITL samples kept per server
    slow_ratio: float = 2.0
    slow_min_samples: int = 5
    slow_probe_s: float = 5.0


@dataclass
class ServerState:
    """A server's live state in this process."""

    config: ServerConfig
    inflight: int = 0
    health: str = HEALTHY
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    cooldowns: int = 0
    probe_at: float = 0.0  # a slow server may take its next probe request from then on
    requests: int = 0
    errors: int = 0
    last_error: str = ""
    ttft_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    itl_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100))

    @property
    def id(self) -> Any:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    def usable(self, now: float) -> bool:
        """Enabled and healthy, or cooling down with the cooldown over (half-open)."""
        if not self.config.enabled or self.health == DOWN:
            return False
        return self.health == HEALTHY or now >= self.cooldown_until

    @property
    def saturated(self) -> bool:
        return self.inflight >= self.config.max_streams

    @property
    def load(self) -> float:
        return self.inflight / max(1, self.config.weight)

    def recent_ttft_ms(self) -> float:
        return median(self.ttft_ms) if self.ttft_ms else 0.0

    def snapshot(self) -> dict[str, Any]:
        """The live figures shown in the dashboard (``LLMServer.live``)."""
        return {
            "health": self.health,
            "inflight": self.inflight,
            "consecutive_failures": self.consecutive_failures,
            "requests": self.requests,
            "errors": self.errors,
            "ttft_p50_ms": round(median(self.ttft_ms), 1) if self.ttft_ms else None,
            "itl_p50_ms": round(median(self.itl_ms), 2) if self.itl_ms else None,
            "last_error": self.last_error[:300],
        }


@dataclass(frozen=True)
class Choice:
    """A routing decision: the server (``None``: nothing usable) and why."""

    server: ServerState | None
    reason: str


#: ``listener(state, previous_health)`` after every health change (metrics, persistence).
HealthListener = Callable[[ServerState, str], None]


class FleetRouter:
    """Routing state of one pool in one process. Not thread-safe: use from one event loop."""

    def __init__(
        self,
        servers: Iterable[ServerConfig],
        *,
        policy: HealthPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_health_change: HealthListener | None = None,
    ) -> None:
        self.policy = policy or HealthPolicy()
        self.clock = clock
        self.on_health_change = on_health_change
        self._states: dict[Any, ServerState] = {}
        self._affinity: dict[str, Any] = {}
        self.update(servers)

    # ------------------------------------------------------------ configuration

    def update(self, servers: Iterable[ServerConfig]) -> None:
        """Replace the server list (admin edits); live state of kept servers survives."""
        states: dict[Any, ServerState] = {}
        for config in servers:
            state = self._states.get(config.id)
            if state is None:
                samples = self.policy.samples
                state = ServerState(
                    config=config, ttft_ms=deque(maxlen=samples), itl_ms=deque(maxlen=samples)
                )
            else:
                state.config = config
            states[config.id] = state
        self._states = states

    @property
    def servers(self) -> list[ServerState]:
        return list(self._states.values())

    def state(self, server_id: Any) -> ServerState:
        """Raises ``KeyError`` for a server the router does not know."""
        return self._states[server_id]

    # ------------------------------------------------------------ choosing

    def choose(self, affinity_key: str, *, exclude: Iterable[Any] = ()) -> Choice:
        """Pick the server for the next request of conversation ``affinity_key``, never one
        in ``exclude`` (servers this request already tried)."""
        now = self.clock()
        excluded = set(exclude)
        candidates = [s for s in self._states.values() if s.id not in excluded]
        usable = [s for s in candidates if s.usable(now)]
        slow = self._slow(usable)
        if slow and len(slow) < len(usable):
            probe = next((s for s in slow if now >= s.probe_at and not s.saturated), None)
            if probe is not None:
                probe.probe_at = now + self.policy.slow_probe_s
                return Choice(probe, "probe")
            usable = [s for s in usable if s not in slow]
        sticky_id = self._affinity.get(affinity_key)
        sticky = self._states.get(sticky_id) if sticky_id is not None else None
        if sticky is not None and sticky in usable and not sticky.saturated:
            return Choice(sticky, "affinity")
        if sticky is None:
            reason = "new"
        elif sticky.id in excluded:
            reason = "failover"
        elif sticky in slow:
            reason = "slow"
        elif sticky.saturated and sticky.usable(now):
            reason = "spill_over"
        else:
            reason = "unhealthy"
        pool = [s for s in usable if not s.saturated]
        if not pool and usable:
            pool, reason = usable, "saturated"
        if not pool:
            pool = [s for s in candidates if s.config.enabled and s.health == COOLDOWN]
            reason = "last_resort"
        if not pool:
            return Choice(None, "no_server")
        chosen = min(pool, key=lambda s: (s.load, s.recent_ttft_ms(), s.name))
        self._affinity[affinity_key] = chosen.id
        return Choice(chosen, reason)

    def _slow(self, usable: list[ServerState]) -> list[ServerState]:
        """The usable servers whose recent TTFT is an outlier (module docstring)."""
        policy = self.policy
        measured = [s for s in usable if len(s.ttft_ms) >= policy.slow_min_samples]
        if len(measured) < 2:
            return []
        reference = median(s.recent_ttft_ms() for s in measured)
        return [s for s in measured if s.recent_ttft_ms() > policy.slow_ratio * reference]

    def forget(self, affinity_key: str) -> None:
        """Drop a conversation's affinity (at hang-up)."""
        self._affinity.pop(affinity_key, None)

    # ------------------------------------------------------------ outcomes

    def begin(self, state: ServerState) -> None:
        state.inflight += 1
        state.requests += 1

    def end(
        self,
        state: ServerState,
        *,
        ok: bool | None,
        ttft_ms: float | None = None,
        itl_ms: Iterable[float] = (),
        error: str = "",
        cool_down: bool = False,
    ) -> None:
        """A request finished: ``ok`` True (success), False (a failure of the server: error,
        refused connection, TTFT deadline, broken stream, stall) or None (cancelled by the
        caller: says nothing about the server). ``cool_down`` with a failure: start a cooldown
        now whatever the count (a stream that broke or stalled mid-reply)."""
        state.inflight = max(0, state.inflight - 1)
        if ttft_ms is not None:
            state.ttft_ms.append(ttft_ms)
        state.itl_ms.extend(itl_ms)
        if ok is True:
            self.record_success(state)
        elif ok is False:
            self.record_failure(state, error, cool_down=cool_down)

    def record_success(self, state: ServerState) -> None:
        """A request or an active check succeeded: the server is healthy again."""
        previous = state.health
        state.consecutive_failures = 0
        state.cooldowns = 0
        state.health = HEALTHY
        if previous != HEALTHY and self.on_health_change:
            self.on_health_change(state, previous)

    def record_failure(
        self, state: ServerState, error: str = "", *, cool_down: bool = False
    ) -> None:
        """A request or an active check failed (the health state machine's input).

        ``cool_down``: the failure alone starts a cooldown (below ``failure_threshold``): a
        stream that broke or stalled after its first token cost a live caller a failover
        mid-sentence, and the conversations that still have affinity to that server should
        not be the next to find out."""
        previous = state.health
        now = self.clock()
        state.errors += 1
        state.last_error = error
        state.consecutive_failures += 1
        policy = self.policy
        if state.consecutive_failures >= policy.down_after:
            state.health = DOWN
        elif (
            cool_down
            or state.consecutive_failures >= policy.failure_threshold
            or previous == COOLDOWN
        ):
            # A new cooldown (or a failed half-open try): each one twice as long as the last.
            if previous != COOLDOWN or now >= state.cooldown_until:
                duration = min(policy.max_cooldown_s, policy.cooldown_s * 2**state.cooldowns)
                state.cooldown_until = now + duration
                state.cooldowns += 1
            state.health = COOLDOWN
        if state.health != previous and self.on_health_change:
            self.on_health_change(state, previous)
