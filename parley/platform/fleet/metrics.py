"""Prometheus metrics of the LLM fleet, served at ``/metrics`` (text exposition format).

Per server (labels ``pool``, ``server``): TTFT and ITL histograms, in-flight streams,
requests by outcome, errors by kind, health state; per pool: failovers by reason. Every
process has its own registry; with several Daphne/Celery processes set
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and ``/metrics`` merges
them.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

#: TTFT buckets (s): 50 ms .. 10 s, dense where voice agents live (150-800 ms).
TTFT_BUCKETS_S = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
#: ITL buckets (s): 5 ms .. 1 s.
ITL_BUCKETS_S = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)
#: ``parley_llm_server_health`` values.
HEALTH_VALUES = {"healthy": 0, "cooldown": 1, "down": 2}

LLM_TTFT = Histogram(
    "parley_llm_ttft_seconds",
    "Time from LLM request to first token, per server",
    ["pool", "server"],
    buckets=TTFT_BUCKETS_S,
)
LLM_ITL = Histogram(
    "parley_llm_itl_seconds",
    "Gap between consecutive streamed tokens, per server",
    ["pool", "server"],
    buckets=ITL_BUCKETS_S,
)
LLM_INFLIGHT = Gauge(
    "parley_llm_inflight_streams",
    "LLM streams in flight, per server",
    ["pool", "server"],
    multiprocess_mode="livesum",
)
LLM_REQUESTS = Counter(
    "parley_llm_requests_total",
    "LLM requests per server and outcome (ok, error, cancelled)",
    ["pool", "server", "outcome"],
)
LLM_ERRORS = Counter(
    "parley_llm_errors_total",
    "Failed LLM requests per server and kind (error, ttft_deadline, broken_stream)",
    ["pool", "server", "kind"],
)
LLM_FAILOVERS = Counter(
    "parley_llm_failovers_total",
    "LLM requests moved to another server before the first token, per pool and reason",
    ["pool", "reason"],
)
LLM_SERVER_HEALTH = Gauge(
    "parley_llm_server_health",
    "Health of each server: 0 healthy, 1 cooling down, 2 down",
    ["pool", "server"],
    multiprocess_mode="max",
)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: every metric of this process (or of all, in multiprocess mode).

    Answers a scraper carrying ``Authorization: Bearer <PARLEY_METRICS_TOKEN>`` (when that
    setting is set) and a signed-in dashboard user (admin or analyst); anyone else gets 401
    (403 for a signed-in user without a role), other methods than GET/HEAD 405."""
    from parley.platform.dashboard.roles import role_of

    token = settings.PARLEY_METRICS_TOKEN
    scraper = bool(token) and hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
    )
    if not scraper and role_of(request.user) is None:
        if request.user.is_authenticated:
            return HttpResponse("metrics need the admin or analyst role\n", status=403)
        response = HttpResponse("metrics need a bearer token or a dashboard login\n", status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    registry = DEFAULT_REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
