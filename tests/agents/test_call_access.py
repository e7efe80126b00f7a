"""Who may place a call: publishable key → call token (origin, rate limits) → WebSocket.

The token endpoint runs through Django's test client against the real cache (Redis under
``make test``); the WebSocket through the real consumer.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlencode

import pytest
from channels.testing import WebsocketCommunicator

from parley.agents.call_tokens import CallTokenError, call_token_issue, call_token_verify
from parley.agents.models import Agent, origin_normalise, origins_parse
from tests.agents.conftest import WSCall, ws_call

PAGE = "https://shop.example.com"


@pytest.fixture
def widget_agent(hospital_agent):  # noqa: ANN001, ANN201
    hospital_agent.allowed_origins = f"{PAGE}\nhttp://localhost:8000"
    hospital_agent.save()
    return hospital_agent


def ask(client, agent: Agent, *, origin: str | None = PAGE, key: str | None = None, **extra):  # noqa: ANN001, ANN003, ANN201
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    return client.post(
        "/api/v1/call-tokens",
        data=json.dumps({"agent": agent.slug, "key": key or agent.publishable_key}),
        content_type="application/json",
        **headers,
        **extra,
    )


# ---------------------------------------------------------------------------- origins


def test_origins_are_normalised_and_bad_ones_named() -> None:
    assert origin_normalise("HTTPS://Shop.Example.com:443/") == "https://shop.example.com"
    assert origin_normalise("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert origins_parse("https://a.example\n\n https://a.example \nhttp://b.example:81") == [
        "https://a.example",
        "http://b.example:81",
    ]
    for bad in ("shop.example.com", "ftp://x.example", "https://x.example/page", "https://"):
        with pytest.raises(ValueError, match="origin|more than"):
            origin_normalise(bad)


def test_agent_clean_rejects_a_bad_origin(hospital_agent) -> None:  # noqa: ANN001
    from django.core.exceptions import ValidationError

    hospital_agent.allowed_origins = "https://ok.example\nhttps://bad.example/path"
    with pytest.raises(ValidationError) as info:
        hospital_agent.full_clean()
    assert "allowed_origins" in info.value.message_dict


# ---------------------------------------------------------------------------- the endpoint


def test_allowed_origin_gets_a_token_the_websocket_accepts(client, widget_agent) -> None:  # noqa: ANN001
    response = ask(client, widget_agent)
    assert response.status_code == 200, response.content
    assert response["Access-Control-Allow-Origin"] == PAGE
    body = response.json()
    assert body["ws_url"] == "ws://testserver/ws/agents/hospital-receptionist/call"
    assert body["expires_in_s"] == 60
    grant = call_token_verify(body["token"], slug=widget_agent.slug, origin=PAGE)
    assert grant.origin == PAGE and grant.purpose == "widget"
    assert not grant.allows_unpublished
    with pytest.raises(CallTokenError, match="already used"):
        call_token_verify(body["token"], slug=widget_agent.slug, origin=PAGE)


def test_refusals_are_clear_json_the_page_can_read(client, widget_agent) -> None:  # noqa: ANN001
    other = ask(client, widget_agent, origin="https://evil.example")
    assert other.status_code == 403 and other.json()["error"] == "origin_not_allowed"
    assert "https://evil.example" in other.json()["message"]
    assert other["Access-Control-Allow-Origin"] == "https://evil.example"
    assert ask(client, widget_agent, origin=None).json()["error"] == "origin_not_allowed"
    wrong = ask(client, widget_agent, key="pk_not-the-key")
    assert wrong.status_code == 403 and wrong.json()["error"] == "invalid_key"
    bad = client.post("/api/v1/call-tokens", data="{", content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    assert client.get("/api/v1/call-tokens").status_code == 405
    widget_agent.published = False
    widget_agent.save()
    unpublished = ask(client, widget_agent)
    assert unpublished.status_code == 403 and unpublished.json()["error"] == "agent_unpublished"


def test_preflight_allows_the_json_post(client) -> None:  # noqa: ANN001
    response = client.options(
        "/api/v1/call-tokens",
        HTTP_ORIGIN=PAGE,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == PAGE
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Allow-Headers"] == "Content-Type"


def test_rate_limits_per_key_and_per_address(client, widget_agent, settings) -> None:  # noqa: ANN001
    settings.PARLEY_CALL_TOKEN_RATE_PER_KEY = "3/m"
    settings.PARLEY_CALL_TOKEN_RATE_PER_ADDRESS = "2/m"
    # A fresh key and fresh addresses: counters live in the shared cache.
    widget_agent.publishable_key = "pk_" + secrets.token_urlsafe(18)
    widget_agent.save()
    net = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    first = [ask(client, widget_agent, REMOTE_ADDR=f"{net}.1").status_code for _ in range(3)]
    assert first == [200, 200, 429]  # the address's limit
    limited = ask(client, widget_agent, REMOTE_ADDR=f"{net}.1")
    assert limited.json()["error"] == "rate_limited" and int(limited["Retry-After"]) > 0
    assert "address" in limited.json()["message"]
    # Another address may still ask, until the key's own limit (3 issued... then refused).
    assert ask(client, widget_agent, REMOTE_ADDR=f"{net}.2").status_code == 200
    by_key = ask(client, widget_agent, REMOTE_ADDR=f"{net}.3")
    assert by_key.status_code == 429 and "publishable key" in by_key.json()["message"]


# ---------------------------------------------------------------------------- the WebSocket


async def connect(slug: str, query: dict[str, str], *, origin: str | None = None) -> WSCall:
    from parley.platform.asgi import application

    headers = [(b"origin", origin.encode())] if origin else []
    communicator = WebsocketCommunicator(
        application, f"/ws/agents/{slug}/call?{urlencode(query)}", headers=headers
    )
    connected, _ = await communicator.connect(timeout=30)
    assert connected
    call = WSCall(communicator)
    await call.wait_for(lambda ev: any(e["type"] in ("session.started", "error") for e in ev))
    return call


async def refused(call: WSCall) -> str:
    await call.pump(timeout=2)
    error = call.of("error")[0]
    assert error["fatal"] is True and call.closed
    return f"{error['code']} {call.close_code}"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_websocket_accepts_only_a_valid_token(widget_agent, reports_dir) -> None:  # noqa: ANN001
    from django.core import signing

    slug = widget_agent.slug
    assert await refused(await ws_call(slug, token=None)) == "token_required 4401"
    assert await refused(await connect(slug, {"token": "nonsense"})) == "bad_call_token 4401"
    forged = signing.dumps({"a": slug, "o": "", "p": "server", "n": "x"}, salt="other")
    assert await refused(await connect(slug, {"token": forged})) == "bad_call_token 4401"
    elsewhere = call_token_issue(agent=Agent(slug="another-agent"))
    assert await refused(await connect(slug, {"token": elsewhere})) == "bad_call_token 4401"
    # A widget token is bound to the page's origin.
    token = call_token_issue(agent=widget_agent, origin=PAGE)
    wrong_page = await connect(slug, {"token": token}, origin="https://evil.example")
    assert await refused(wrong_page) == "bad_call_token 4401"

    token = call_token_issue(agent=widget_agent, origin=PAGE)
    call = await connect(slug, {"token": token}, origin=PAGE)
    assert call.of("session.started")
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    await call.communicator.disconnect()
    again = await connect(slug, {"token": token}, origin=PAGE)  # single use
    assert await refused(again) == "bad_call_token 4401"
    assert "already used" in again.of("error")[0]["message"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_test_call_tokens_reach_unpublished_agents_widget_tokens_do_not(
    hospital_agent, reports_dir
) -> None:  # noqa: ANN001
    from channels.db import database_sync_to_async

    hospital_agent.published = False
    await database_sync_to_async(hospital_agent.save)()
    widget = await ws_call(hospital_agent.slug, token="widget")
    assert await refused(widget) == "agent_unpublished 4403"
    test = await ws_call(hospital_agent.slug, token="test")
    assert test.of("session.started")
    await test.communicator.send_to(text_data=json.dumps({"type": "playback.started"}))
    await test.wait_for(lambda ev: any(e["type"] == "error" for e in ev))
    assert test.of("error")[0]["code"] == "bad_playback"
    await test.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await test.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    await test.communicator.disconnect()
