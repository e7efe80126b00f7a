"""The fleet's Django side: per-process routers fed from the database, and health checks.

- :func:`pool_router` — the process's :class:`FleetRouter` of a pool. :func:`router_refresh`
  (awaited before each LLM request, at most every ``FLEET_REFRESH_S``) reloads the pool's
  servers (admin edits, API keys from their environment variables), applies the results of
  new active health checks, and writes each server's live snapshot to ``LLMServer.live``.
- :func:`server_health_check` — the active check of one server: ``GET /health`` at the
  server's root and ``GET /v1/models``, which must list the pool's served model. The
  ``fleet_health_check_all`` Celery task runs it for every enabled server (Celery beat,
  every ``FLEET_HEALTH_INTERVAL_S``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from parley.platform.fleet import metrics
from parley.platform.fleet.models import LLMServer, ModelPool
from parley.platform.fleet.router import (
    COOLDOWN,
    DOWN,
    HEALTHY,
    FleetRouter,
    HealthPolicy,
    ServerConfig,
    ServerState,
)
from parley.platform.log_redaction import secret_env_read

logger = logging.getLogger(__name__)

_routers: dict[int, FleetRouter] = {}
_refreshed_at: dict[int, float] = {}
_seen_checks: dict[int, dt.datetime] = {}
_refresh_locks: dict[tuple[int, int], asyncio.Lock] = {}


def health_policy() -> HealthPolicy:
    """The health thresholds from settings (``FLEET_*``)."""
    return HealthPolicy(
        failure_threshold=settings.FLEET_FAILURE_THRESHOLD,
        cooldown_s=settings.FLEET_COOLDOWN_S,
        max_cooldown_s=settings.FLEET_MAX_COOLDOWN_S,
        down_after=settings.FLEET_DOWN_AFTER,
    )


def _health_metric(state: ServerState, previous: str, *, pool: str) -> None:
    metrics.LLM_SERVER_HEALTH.labels(pool, state.name).set(metrics.HEALTH_VALUES[state.health])
    logger.warning("LLM server %s/%s: %s -> %s", pool, state.name, previous, state.health)


@dataclass(frozen=True)
class _Loaded:
    pool_slug: str
    configs: list[ServerConfig]
    checks: dict[int, tuple[dt.datetime | None, str, dt.datetime | None, str]]


def _servers_load(pool_id: int) -> _Loaded:
    pool = ModelPool.objects.get(pk=pool_id)
    configs, checks = [], {}
    for row in pool.servers.all():
        key = secret_env_read(row.api_key_env)
        enabled = row.enabled and (bool(key) or not row.api_key_env)
        configs.append(
            ServerConfig(
                id=row.pk,
                name=row.name,
                base_url=row.base_url,
                api_key=key or "not-needed",
                weight=row.weight,
                max_streams=row.max_streams,
                enabled=enabled,
            )
        )
        checks[row.pk] = (row.last_checked_at, row.health, row.cooldown_until, row.last_error)
    return _Loaded(pool_slug=pool.slug, configs=configs, checks=checks)


def pool_router(pool_id: int, *, pool_slug: str = "") -> FleetRouter:
    """The process's router of a pool (created empty; :func:`router_refresh` fills it)."""
    router = _routers.get(pool_id)
    if router is None:
        label = pool_slug or str(pool_id)
        router = FleetRouter(
            [],
            policy=health_policy(),
            on_health_change=lambda state, previous: _health_metric(state, previous, pool=label),
        )
        _routers[pool_id] = router
    return router


async def router_refresh(pool_id: int, *, force: bool = False) -> FleetRouter:
    """Bring the pool's router up to date with the database (at most every
    ``FLEET_REFRESH_S`` unless ``force``); database work runs in a thread."""
    router = pool_router(pool_id)

    def fresh() -> bool:
        age_s = time.monotonic() - _refreshed_at.get(pool_id, -1e9)
        return not force and age_s < settings.FLEET_REFRESH_S

    if fresh():
        return router
    # One refresh at a time per pool and event loop (a lock cannot be shared across loops).
    lock = _refresh_locks.setdefault((pool_id, id(asyncio.get_running_loop())), asyncio.Lock())
    async with lock:
        if fresh():  # another request refreshed it while this one waited
            return router
        loaded = await database_sync_to_async(_servers_load)(pool_id)
        router.update(loaded.configs)
        _apply_checks(router, loaded)
        snapshot = {state.id: state.snapshot() for state in router.servers}
        await database_sync_to_async(_live_write)(snapshot)
        _refreshed_at[pool_id] = time.monotonic()
    return router


def _apply_checks(router: FleetRouter, loaded: _Loaded) -> None:
    """Feed active health-check results the router has not seen yet into its state machine."""
    for server_id, (checked_at, health, cooldown_until, error) in loaded.checks.items():
        if checked_at is None or _seen_checks.get(server_id) == checked_at:
            continue
        _seen_checks[server_id] = checked_at
        state = router.state(server_id)
        if health == HEALTHY:
            if state.health != HEALTHY:
                router.record_success(state)
        elif health in (COOLDOWN, DOWN):
            previous = state.health
            state.health = health
            state.last_error = error
            remaining = (cooldown_until - timezone.now()).total_seconds() if cooldown_until else 0
            state.cooldown_until = max(state.cooldown_until, router.clock() + max(0.0, remaining))
            if previous != health and router.on_health_change:
                router.on_health_change(state, previous)


def _live_write(snapshot: dict[Any, dict[str, Any]]) -> None:
    now = timezone.now().isoformat()
    for server_id, live in snapshot.items():
        LLMServer.objects.filter(pk=server_id).update(live={**live, "at": now})


# ---------------------------------------------------------------- active health checks


def server_root_url(base_url: str) -> str:
    """``http://host:8000/v1`` -> ``http://host:8000`` (where vLLM serves ``/health``)."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def server_probe(server: LLMServer, *, timeout_s: float | None = None) -> str:
    """Probe one server; returns ``""`` when healthy, else the reason. Never raises."""
    timeout_s = timeout_s or settings.FLEET_HEALTH_TIMEOUT_S
    key = secret_env_read(server.api_key_env)
    if server.api_key_env and not key:
        return f"the environment variable {server.api_key_env!r} holding its key is not set"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(timeout=timeout_s, headers=headers) as client:
            health = client.get(f"{server_root_url(server.base_url)}/health")
            if health.status_code != 200:
                return f"/health answered {health.status_code}"
            listed = client.get(f"{server.base_url.rstrip('/')}/models")
            if listed.status_code != 200:
                return f"/v1/models answered {listed.status_code}"
            models = [m.get("id") for m in listed.json().get("data", [])]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    if server.pool.model not in models:
        return f"model {server.pool.model!r} not served (lists {', '.join(map(str, models))})"
    return ""


@transaction.atomic
def server_health_record(server_id: int, error: str) -> LLMServer:
    """Apply one active check's result to the server's row (the router's state machine,
    with cooldowns computed from the consecutive failures)."""
    server = LLMServer.objects.select_for_update().get(pk=server_id)
    policy = health_policy()
    now = timezone.now()
    server.last_checked_at = now
    server.last_error = error[:500]
    if not error:
        server.health = HEALTHY
        server.consecutive_failures = 0
        server.cooldown_until = None
    else:
        server.consecutive_failures += 1
        failures = server.consecutive_failures
        if failures >= policy.down_after:
            server.health = DOWN
        elif failures >= policy.failure_threshold:
            exponent = failures - policy.failure_threshold
            cooldown_s = min(policy.max_cooldown_s, policy.cooldown_s * 2**exponent)
            server.health = COOLDOWN
            server.cooldown_until = now + dt.timedelta(seconds=cooldown_s)
    server.save(
        update_fields=[
            "last_checked_at",
            "last_error",
            "health",
            "consecutive_failures",
            "cooldown_until",
        ]
    )
    metrics.LLM_SERVER_HEALTH.labels(server.pool.slug, server.name).set(
        metrics.HEALTH_VALUES[server.health]
    )
    return server


def fleet_health_check(*, pool_id: int | None = None) -> dict[str, str]:
    """Check every enabled server (of one pool, or all); returns ``{pool/name: health}``."""
    servers = LLMServer.objects.filter(enabled=True).select_related("pool")
    if pool_id is not None:
        servers = servers.filter(pool_id=pool_id)
    results = {}
    for server in servers:
        updated = server_health_record(server.pk, server_probe(server))
        results[str(updated)] = updated.health
    return results
