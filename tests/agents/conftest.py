"""Fixtures for calls through the real consumer: the hospital agent on the embedded engines."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from parley.platform.fleet.models import ModelPool


@pytest.fixture(autouse=True)
async def _close_channel_layer_pools():  # noqa: ANN202
    """Close channels-redis connections opened on this test's event loop before it closes."""
    yield
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if hasattr(layer, "close_pools"):
        await layer.close_pools()


def script_pool(*, key: str) -> ModelPool:
    """A simulator pool whose model plays the test's script ``key``."""
    return ModelPool.objects.create(
        slug=f"script-{key}",
        name=f"script {key}",
        kind=ModelPool.Kind.SIMULATOR,
        model=f"simulator-script/{key}",
        sim_ttft_ms=20,
        sim_itl_ms=2,
    )


@dataclass
class WSCall:
    """A caller on a WebsocketCommunicator that collects events and audio as they arrive."""

    communicator: WebsocketCommunicator
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    #: Bytes of audio received before each event (``audio_before[i]`` for ``events[i]``).
    audio_before: list[int] = field(default_factory=list)
    closed: bool = False
    close_code: int | None = None

    async def pump(self, timeout: float = 0.01) -> None:
        """Collect what the server sends for ``timeout`` seconds (a deadline, not an idle
        time: an agent speaking sends a frame every 20 ms and must not starve the caller)."""
        # Read the output queue directly: receive_output() kills the application on a time-out.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.communicator.future.done():
                self.communicator.future.result()  # surface the consumer's exception
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                message = await asyncio.wait_for(self.communicator.output_queue.get(), remaining)
            except TimeoutError:
                return
            if message["type"] == "websocket.close":
                self.closed = True
                self.close_code = message.get("code")
                return
            if message.get("bytes") is not None:
                self.audio.extend(message["bytes"])
            else:
                self.events.append(json.loads(message["text"]))
                self.audio_before.append(len(self.audio))

    async def send_audio(
        self, pcm: bytes, *, frame_bytes: int = 640, realtime: bool = False
    ) -> None:
        for i in range(0, len(pcm), frame_bytes):
            frame = pcm[i : i + frame_bytes]
            await self.communicator.send_to(bytes_data=frame + bytes(frame_bytes - len(frame)))
            await self.pump(timeout=0.02 if realtime else 0.0005)

    async def wait_for(self, predicate, *, timeout: float = 60.0) -> None:  # noqa: ANN001
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.events):
            if loop.time() > deadline:
                raise AssertionError(
                    f"timed out; events so far: {[e['type'] for e in self.events]}"
                )
            if self.closed:
                raise AssertionError("connection closed")
            await self.pump(timeout=0.05)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


async def ws_call(
    slug: str,
    *,
    query: str = "",
    token: str | None = "widget",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> WSCall:
    """Connect to the agent's call socket. ``token``: the purpose of a call token minted for
    the connection (``widget``, ``test``, ``server``), or ``None`` for none at all; ``headers``:
    the HTTP upgrade request's headers."""
    from urllib.parse import urlencode

    from parley.agents.call_tokens import call_token_issue
    from parley.agents.models import Agent
    from parley.platform.asgi import application

    if token is not None and "sandbox=" not in query:
        minted = call_token_issue(agent=Agent(slug=slug), purpose=token)
        query = "&".join(filter(None, [query, urlencode({"token": minted})]))
    path = f"/ws/agents/{slug}/call" + (f"?{query}" if query else "")
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=30)
    assert connected
    call = WSCall(communicator)
    await call.wait_for(lambda ev: any(e["type"] in ("session.started", "error") for e in ev))
    return call


def turn_ended(index: int):  # noqa: ANN201
    return lambda events: any(e["type"] == "turn.ended" and e["turn"] == index for e in events)
