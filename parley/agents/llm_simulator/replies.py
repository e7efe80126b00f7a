"""The request and reply types shared by the LLM simulator's policies and its server."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ChatRequest", "PlannedToolCall", "Policy", "Reply", "message_text", "new_call_id"]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a validated chat-completions request that policies read.

    ``messages`` are OpenAI chat messages (dicts). ``tool_names`` are the function names
    offered in ``tools`` (empty when ``tool_choice`` is ``"none"``).
    """

    model: str
    messages: Sequence[Mapping[str, Any]]
    tool_names: frozenset[str] = frozenset()
    parallel_tool_calls: bool = True


@dataclass(frozen=True, slots=True)
class PlannedToolCall:
    """One tool call to stream. ``arguments`` is the exact JSON text sent (maybe malformed)."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What the "model" answers: text first, then tool calls.

    ``finish_reason`` defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``.
    ``ttft_ms``/``itl_ms`` override the server's pacing for this reply.
    """

    text: str = ""
    tool_calls: tuple[PlannedToolCall, ...] = ()
    finish_reason: str | None = None
    ttft_ms: float | None = None
    itl_ms: float | None = None

    @property
    def resolved_finish_reason(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")


class Policy(Protocol):
    """Decides the reply to one request. Must not block (no I/O)."""

    def respond(self, request: ChatRequest) -> Reply: ...


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message whose ``content`` is a string, text parts or None."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def new_call_id() -> str:
    """An OpenAI-style tool call id: ``call_`` and 24 hex digits."""
    return f"call_{uuid.uuid4().hex[:24]}"
