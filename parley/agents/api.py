"""``POST /api/v1/call-tokens``: a web page's publishable key → a short-lived call token.

Called cross-origin by the widget on any page that embeds it, so it answers CORS itself: the
page's ``Origin`` must be one of the agent's allowed origins. Rate-limited per publishable key
and per client address (django-ratelimit over the shared cache). See docs/widget.md.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_ratelimit.core import get_usage

from parley.agents.call_tokens import call_token_issue
from parley.agents.models import Agent, origin_normalise
from parley.platform.http import client_address

logger = logging.getLogger(__name__)


@csrf_exempt  # a public, cookie-less endpoint: the publishable key and Origin are the checks
def call_token_create(request: HttpRequest) -> HttpResponse:
    """Issue a call token. Body (JSON): ``{"agent": slug, "key": publishable_key}``.

    200 ``{"token", "ws_url", "expires_in_s", "agent": {"name"}}``; errors are JSON
    ``{"error": code, "message": text}``: 400 ``bad_request``, 403 ``invalid_key`` (unknown
    agent, or a key of another agent), ``agent_unpublished``, ``origin_not_allowed``; 429
    ``rate_limited`` (with ``Retry-After``); 503 ``service_unavailable`` (with ``Retry-After``)
    when the rate-limit counters' store (Redis) is unreachable; 405 for other methods.
    """
    origin = request.headers.get("Origin", "")
    if request.method == "OPTIONS":  # CORS preflight; the real check is on the POST
        return _cors(HttpResponse(status=204), origin, preflight=True)
    if request.method != "POST":
        return _cors(_error(405, "method_not_allowed", "use POST"), origin)
    try:
        body = json.loads(request.body or b"{}")
        slug, key = str(body["agent"]), str(body["key"])
    except (ValueError, KeyError, TypeError):
        return _cors(
            _error(400, "bad_request", 'send JSON {"agent": "<slug>", "key": "<publishable key>"}'),
            origin,
        )
    try:
        limited = _rate_limited(request, key)
    except redis.RedisError:  # the counters live in Redis: restarting, or unreachable
        logger.warning("call token refused: the rate-limit store is unavailable", exc_info=True)
        response = _error(
            503, "service_unavailable", "calls cannot be placed right now; try again in a moment"
        )
        response["Retry-After"] = "1"
        return _cors(response, origin)
    if limited is not None:
        return _cors(limited, origin)
    agent = Agent.objects.filter(slug=slug, publishable_key=key).first()
    if agent is None:
        return _cors(_error(403, "invalid_key", "unknown agent or wrong publishable key"), origin)
    if not agent.published:
        return _cors(_error(403, "agent_unpublished", f"agent {slug!r} is not published"), origin)
    try:
        page_origin = origin_normalise(origin) if origin else ""
    except ValueError:
        page_origin = ""
    if not page_origin or page_origin not in agent.allowed_origin_list:
        logger.info("call token refused: origin %r not allowed for %s", origin, slug)
        return _cors(
            _error(
                403,
                "origin_not_allowed",
                f"this page's origin ({origin or 'none'}) is not allowed to call {slug!r}; "
                "add it to the agent's allowed origins",
            ),
            origin,
        )
    token = call_token_issue(agent=agent, purpose="widget", origin=page_origin)
    return _cors(JsonResponse(call_grant_body(request, agent=agent, token=token)), origin)


def call_grant_body(request: HttpRequest, *, agent: Agent, token: str) -> dict[str, Any]:
    """What the widget needs to connect: ``{"token", "ws_url", "expires_in_s", "agent"}``."""
    scheme = "wss" if request.is_secure() else "ws"
    return {
        "token": token,
        "ws_url": f"{scheme}://{request.get_host()}/ws/agents/{agent.slug}/call",
        "expires_in_s": settings.PARLEY_CALL_TOKEN_TTL_S,
        "agent": {"name": agent.name},
    }


def _rate_limited(request: HttpRequest, key: str) -> HttpResponse | None:
    """429 when the client address or the key is over its rate, else ``None``."""
    address = client_address(request)
    checks = (  # the address first: a client over its limit does not use up the key's
        ("address", settings.PARLEY_CALL_TOKEN_RATE_PER_ADDRESS, lambda _g, _r: address),
        ("key", settings.PARLEY_CALL_TOKEN_RATE_PER_KEY, lambda _g, _r: key),
    )
    for name, rate, key_fn in checks:
        usage = get_usage(
            request, group=f"parley.call-token.{name}", key=key_fn, rate=rate, increment=True
        )
        if usage is not None and usage["should_limit"]:
            response = _error(
                429,
                "rate_limited",
                f"too many call tokens for this {'publishable key' if name == 'key' else 'address'}"
                f" (limit {rate}); try again in {usage['time_left']} s",
            )
            response["Retry-After"] = str(usage["time_left"])
            return response
    return None


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def _cors(response: HttpResponse, origin: str, *, preflight: bool = False) -> HttpResponse:
    """Let the page read the answer (errors included, so the widget can say what is wrong)."""
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    if preflight:
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "600"
    return response
