"""The Parley LLM simulator: an OpenAI-compatible stand-in for vLLM (not a real model).

It speaks the ``/v1/chat/completions`` protocol (SSE streaming and plain JSON, tool calls as
deltas) with scripted policies instead of a neural network, so the demo and the tests run
without GPUs. Every output says it is a simulator: model ids contain ``simulator``, ``/health``
and ``/v1/models`` say so, and responses carry ``system_fingerprint="parley-llm-simulator"``.

* :mod:`.server` — the aiohttp application, :class:`~.server.SimulatorServer` for tests and
  :func:`~.server.run` for the management command.
* :mod:`.policies` — what the "model" says and which policy answers a request: test
  scripts, echo, and :mod:`.hospital` (the scripted stand-in for the hospital scenario).
* :mod:`.replies` — the request and reply types policies exchange with the server.
* :mod:`.spoken` — parsing of lower-cased STT text (numbers, dates, times, phone numbers).

This package imports neither Django nor the Parley apps.
"""

from parley.agents.llm_simulator.server import (
    SimulatorServer,
    SimulatorSettings,
    SimulatorStats,
    create_app,
    run,
)

__all__ = ["SimulatorServer", "SimulatorSettings", "SimulatorStats", "create_app", "run"]
