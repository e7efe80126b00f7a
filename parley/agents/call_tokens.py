"""Short-lived signed call tokens: the only way onto the caller WebSocket.

A web page never holds a secret. The widget presents the agent's *publishable key* to
``POST /api/v1/call-tokens``; the server checks the page's ``Origin`` against the agent's
allowed origins and rate-limits per key and per client address, then returns a token that

- names one agent, the origin it was issued to and its purpose (``widget``: a public web
  page; ``test``: a dashboard test call, which may reach an unpublished agent; ``server``:
  a call this server places itself, such as ``manage.py call``);
- is signed with ``SECRET_KEY`` (``django.core.signing``), valid ``PARLEY_CALL_TOKEN_TTL_S``
  seconds (default 60) and good for one connection only (its nonce is spent in the cache).

A reconnect after a network drop therefore asks for a new token. See docs/widget.md.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.core import signing
from django.core.cache import cache

from parley.agents.models import Agent, origin_normalise

_SALT = "parley.call-token"

#: Error code of a token that could not be checked: the cache (Redis) is unreachable.
TOKEN_STORE_UNAVAILABLE = "service_unavailable"

#: Who a token was issued to (see the module docstring).
PURPOSES = ("widget", "test", "server")


class CallTokenError(ValueError):
    """A token the WebSocket must refuse; ``code`` is the protocol's error code."""

    def __init__(self, message: str, *, code: str = "bad_call_token") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CallGrant:
    """What a verified token allows: one call to ``agent_slug`` from ``origin``."""

    agent_slug: str
    origin: str  # "" for server-placed calls
    purpose: str
    user_id: int | None
    nonce: str

    @property
    def allows_unpublished(self) -> bool:
        return self.purpose in ("test", "server")


def call_token_issue(
    *, agent: Agent, purpose: str = "widget", origin: str = "", user: Any = None
) -> str:
    """Sign a one-connection call token for ``agent``.

    ``origin`` (``scheme://host[:port]``) binds the token to the page that asked for it; the
    WebSocket then only accepts it with that ``Origin`` header. Raises ``ValueError`` for an
    unknown purpose or a malformed origin.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown call token purpose {purpose!r}")
    payload = {
        "a": agent.slug,
        "o": origin_normalise(origin) if origin else "",
        "p": purpose,
        "u": getattr(user, "pk", None),
        "n": secrets.token_urlsafe(12),
    }
    return signing.dumps(payload, salt=_SALT, compress=False)


def call_token_verify(token: str, *, slug: str, origin: str | None) -> CallGrant:
    """Check a token presented on ``/ws/agents/<slug>/call`` and spend it.

    ``origin``: the WebSocket's ``Origin`` header (``None`` when absent, as from a server-side
    client). Raises :class:`CallTokenError` when the token is forged, expired, already used,
    for another agent, or presented from another origin than it was issued to; with code
    ``service_unavailable`` when the cache that spends it (Redis) is unreachable.
    """
    try:
        payload = signing.loads(token, salt=_SALT, max_age=settings.PARLEY_CALL_TOKEN_TTL_S)
    except signing.SignatureExpired as exc:
        raise CallTokenError("the call token has expired; ask for a new one") from exc
    except signing.BadSignature as exc:
        raise CallTokenError("the call token is not valid") from exc
    grant = CallGrant(
        agent_slug=payload.get("a", ""),
        origin=payload.get("o", ""),
        purpose=payload.get("p", ""),
        user_id=payload.get("u"),
        nonce=payload.get("n", ""),
    )
    if grant.agent_slug != slug:
        raise CallTokenError("the call token was issued for another agent")
    if grant.origin:
        try:
            presented = origin_normalise(origin) if origin else ""
        except ValueError:
            presented = ""
        if presented != grant.origin:
            raise CallTokenError(
                f"the call token was issued to {grant.origin}, not to this page's origin"
            )
    # One connection per token: add() is atomic in Redis (and per process in memory).
    try:
        fresh = cache.add(
            f"parley:call-token:{grant.nonce}", 1, settings.PARLEY_CALL_TOKEN_TTL_S + 5
        )
    except redis.RedisError as exc:  # Redis restarting: the token cannot be spent, nor checked
        raise CallTokenError(
            "calls cannot be placed right now (the token store is unavailable); "
            "try again in a moment",
            code=TOKEN_STORE_UNAVAILABLE,
        ) from exc
    if not fresh:
        raise CallTokenError("the call token was already used; ask for a new one")
    return grant
