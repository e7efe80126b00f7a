"""Streaming chat-completions interface (OpenAI-compatible, with tool calls).

``stream(messages=..., tools=...)`` yields :class:`TextDelta` as tokens arrive and one final
:class:`LLMDone` carrying the complete tool calls (deltas accumulated by index). Messages and
tools use the OpenAI Chat Completions JSON shapes.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any

from parley.agents.voice.messages import LLMChunk


class LLMError(RuntimeError):
    """The LLM endpoint failed (refused connection, HTTP error, broken stream).

    ``route``: how the request was routed when a fleet served it (servers tried, outcomes).
    """

    def __init__(self, message: str, *, route: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.route = route


class LLM(abc.ABC):
    """A chat-completions provider."""

    name: str = "llm"

    @abc.abstractmethod
    def stream(
        self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> AsyncIterator[LLMChunk]:
        """Stream one completion. Raises :class:`LLMError` from the iterator on failure."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Close HTTP connections."""
