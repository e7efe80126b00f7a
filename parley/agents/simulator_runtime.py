"""The embedded LLM simulator: started on first use inside the serving process.

Agents whose model pool is of kind ``simulator`` talk to a real OpenAI-compatible HTTP server
on 127.0.0.1 (so the production client code path runs), served from a daemon thread with its
own event loop so that it outlives any one caller's loop (tests create one loop per test).
"""

from __future__ import annotations

import asyncio
import threading

from parley.agents.llm_simulator.server import SimulatorServer, SimulatorSettings

_lock = threading.Lock()
_servers: dict[tuple[int, int], str] = {}


def simulator_base_url(*, ttft_ms: int, itl_ms: int) -> str:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a simulator with this latency profile.

    Blocks until the server listens (a few ms); call it off the event loop.
    """
    key = (ttft_ms, itl_ms)
    with _lock:
        if key in _servers:
            return _servers[key]
        ready = threading.Event()
        box: dict[str, object] = {}

        def serve() -> None:
            async def main() -> None:
                settings = SimulatorSettings(
                    host="127.0.0.1", port=0, ttft_ms=ttft_ms, itl_ms=itl_ms
                )
                try:
                    async with SimulatorServer(settings) as server:
                        box["url"] = server.base_url
                        ready.set()
                        await asyncio.Event().wait()  # serve until the process exits
                except BaseException as exc:
                    box["error"] = exc
                    ready.set()
                    raise

            asyncio.run(main())

        thread = threading.Thread(
            target=serve, name=f"llm-simulator-{ttft_ms}-{itl_ms}", daemon=True
        )
        thread.start()
        ready.wait(timeout=10)
        if "url" not in box:
            raise RuntimeError(f"the LLM simulator did not start: {box.get('error')!r}")
        _servers[key] = str(box["url"])
        return _servers[key]
