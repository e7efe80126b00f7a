"""Run a coroutine against this Parley served in-process by Daphne on an ephemeral port.

Used by ``manage.py call`` without ``--url``: the real ASGI application, the real Daphne
HTTP/WebSocket server and the real client, all in one process, so the whole protocol path
is exercised with nothing to start first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def run_with_inprocess_server(client: Callable[[str], Awaitable[T]]) -> T:
    """Serve Parley on ``127.0.0.1:<free port>``, run ``client(base_ws_url)``, stop, return.

    Exceptions raised by the client propagate. Must be called once per process (Twisted's
    reactor cannot restart).
    """
    from daphne.server import Server  # installs Twisted's asyncio reactor; import first
    from twisted.internet import reactor

    from parley.platform.asgi import application

    outcome: dict[str, object] = {}

    def on_ready() -> None:
        reactor.callLater(0, start_client)  # type: ignore[attr-defined]

    def start_client() -> None:
        if not server.listening_addresses:
            reactor.callLater(0.01, start_client)  # type: ignore[attr-defined]
            return
        host, port = server.listening_addresses[0]
        task = asyncio.ensure_future(client(f"ws://{host}:{port}"))

        def finished(fut: asyncio.Future[T]) -> None:
            if fut.cancelled():
                outcome["error"] = asyncio.CancelledError()
            elif fut.exception() is not None:
                outcome["error"] = fut.exception()
            else:
                outcome["value"] = fut.result()
            server.stop()

        task.add_done_callback(finished)

    server = Server(
        application=application,
        endpoints=["tcp:port=0:interface=127.0.0.1"],
        signal_handlers=False,
        ready_callable=on_ready,
        verbosity=0,
    )
    server.run()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
