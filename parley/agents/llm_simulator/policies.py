"""Scripted policies: what the LLM simulator "says" to one chat-completions request.

A policy turns a validated :class:`ChatRequest` into a :class:`Reply` (text and/or tool calls);
the server streams it. Policies are pure, synchronous and cheap (a few regexes over short
text), so they run on the event loop without blocking it. They keep no state between
requests: everything is derived from the request's messages, like a real model.

Which policy answers (see :class:`PolicyRouter`):

* ``model="simulator-script/{key}"`` → :class:`ScriptPolicy` with the script registered under
  ``key`` (tests). Turn index = number of ``user`` messages − 1; step index = number of
  ``assistant`` messages after the last ``user`` message. Past the end: a short text reply.
* the default model and the request's ``tools`` include a hospital tool name →
  :class:`HospitalPolicy`, the scripted stand-in for the hospital scenario.
* otherwise → :class:`EchoPolicy` ("You said: ...").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parley.agents.llm_simulator.hospital import HOSPITAL_DIR, HospitalPolicy
from parley.agents.llm_simulator.replies import (
    ChatRequest,
    PlannedToolCall,
    Policy,
    Reply,
    message_text,
    new_call_id,
)

__all__ = [
    "HOSPITAL_DIR",
    "SCRIPT_MODEL_PREFIX",
    "ChatRequest",
    "EchoPolicy",
    "HospitalPolicy",
    "PlannedToolCall",
    "Policy",
    "PolicyRouter",
    "Reply",
    "Script",
    "ScriptError",
    "ScriptPolicy",
    "ScriptRegistry",
    "UnknownModelError",
    "message_text",
    "new_call_id",
    "offered_tool_names",
    "script_position",
]

#: Model-name prefix selecting a registered test script: ``simulator-script/{key}``.
SCRIPT_MODEL_PREFIX = "simulator-script/"

_SCRIPT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


# ---------------------------------------------------------------- script mode


class ScriptError(ValueError):
    """A script registration is malformed (the message says where)."""


@dataclass(frozen=True, slots=True)
class ScriptStep:
    """One scripted response: optional text, then optional tool calls."""

    text: str = ""
    tool_calls: tuple[PlannedToolCall, ...] = ()
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Script:
    """Scripted turns: ``turns[t][s]`` is the response to step ``s`` of caller turn ``t``.

    JSON form (the body of ``POST /simulator/scripts/{key}``)::

        {"turns": [[{"tool_calls": [{"name": "get_appointment",
                                     "arguments": {"patient_identifier": "John Smith"}}]},
                    {"text": "You have one appointment."}]],
         "ttft_ms": 20, "itl_ms": 5}

    A step has ``text`` and/or ``tool_calls`` (and optionally ``finish_reason``). A tool call
    has ``name`` and either ``arguments`` (any JSON value, serialised) or ``raw_arguments`` (a
    string sent verbatim, e.g. malformed JSON), and optionally a fixed ``id``. ``ttft_ms`` and
    ``itl_ms`` override the server's pacing for requests using this script.
    """

    turns: tuple[tuple[ScriptStep, ...], ...]
    ttft_ms: float | None = None
    itl_ms: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> Script:
        """Build a script from its JSON form. Raises :class:`ScriptError`."""
        if not isinstance(data, Mapping):
            raise ScriptError("script must be a JSON object with a 'turns' list")
        unknown = set(data) - {"turns", "ttft_ms", "itl_ms"}
        if unknown:
            raise ScriptError(f"unknown script field(s): {', '.join(sorted(unknown))}")
        turns = data.get("turns")
        if not isinstance(turns, list):
            raise ScriptError("'turns' must be a list of turns (each a list of steps)")
        parsed = []
        for t, turn in enumerate(turns):
            if not isinstance(turn, list):
                raise ScriptError(f"turns[{t}] must be a list of steps")
            parsed.append(
                tuple(_parse_step(step, f"turns[{t}][{s}]") for s, step in enumerate(turn))
            )
        return cls(
            turns=tuple(parsed),
            ttft_ms=_optional_ms(data.get("ttft_ms"), "ttft_ms"),
            itl_ms=_optional_ms(data.get("itl_ms"), "itl_ms"),
        )


def _optional_ms(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ScriptError(f"'{name}' must be a number of milliseconds >= 0")
    return float(value)


def _parse_step(step: Any, where: str) -> ScriptStep:
    if not isinstance(step, Mapping):
        raise ScriptError(f"{where} must be an object with 'text' and/or 'tool_calls'")
    unknown = set(step) - {"text", "tool_calls", "finish_reason"}
    if unknown:
        raise ScriptError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    text = step.get("text", "")
    if not isinstance(text, str):
        raise ScriptError(f"{where}.text must be a string")
    finish_reason = step.get("finish_reason")
    if finish_reason is not None and not isinstance(finish_reason, str):
        raise ScriptError(f"{where}.finish_reason must be a string")
    raw_calls = step.get("tool_calls", [])
    if not isinstance(raw_calls, list):
        raise ScriptError(f"{where}.tool_calls must be a list")
    if not text and not raw_calls:
        raise ScriptError(f"{where} needs 'text' or 'tool_calls'")
    calls = []
    for c, call in enumerate(raw_calls):
        at = f"{where}.tool_calls[{c}]"
        if not isinstance(call, Mapping):
            raise ScriptError(f"{at} must be an object")
        unknown = set(call) - {"name", "arguments", "raw_arguments", "id"}
        if unknown:
            raise ScriptError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}")
        name = call.get("name")
        if not isinstance(name, str) or not name:
            raise ScriptError(f"{at}.name must be a non-empty string")
        if "raw_arguments" in call:
            if "arguments" in call:
                raise ScriptError(f"{at}: give 'arguments' or 'raw_arguments', not both")
            if not isinstance(call["raw_arguments"], str):
                raise ScriptError(f"{at}.raw_arguments must be a string")
            arguments = call["raw_arguments"]
        else:
            arguments = json.dumps(call.get("arguments", {}))
        call_id = call.get("id")
        if call_id is not None and (not isinstance(call_id, str) or not call_id):
            raise ScriptError(f"{at}.id must be a non-empty string")
        calls.append(PlannedToolCall(name=name, arguments=arguments, id=call_id))
    return ScriptStep(text=text, tool_calls=tuple(calls), finish_reason=finish_reason)


class ScriptPolicy:
    """Replays a :class:`Script`, choosing the step from the request's messages alone."""

    #: Said when the conversation has gone past the end of the script.
    END_OF_SCRIPT = "The simulator script has no more steps."

    def __init__(self, script: Script) -> None:
        self.script = script

    def respond(self, request: ChatRequest) -> Reply:
        turn, step = script_position(request.messages)
        script = self.script
        turns = script.turns
        if turn < 0 or turn >= len(turns) or step >= len(turns[turn]):
            return Reply(text=self.END_OF_SCRIPT, ttft_ms=script.ttft_ms, itl_ms=script.itl_ms)
        scripted = turns[turn][step]
        return Reply(
            text=scripted.text,
            tool_calls=scripted.tool_calls,
            finish_reason=scripted.finish_reason,
            ttft_ms=script.ttft_ms,
            itl_ms=script.itl_ms,
        )


def script_position(messages: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(turn, step): user messages − 1, and assistant messages after the last user message."""
    last_user = -1
    users = 0
    for i, message in enumerate(messages):
        if message.get("role") == "user":
            users += 1
            last_user = i
    step = sum(1 for message in messages[last_user + 1 :] if message.get("role") == "assistant")
    return users - 1, step


class ScriptRegistry:
    """Scripts by key, shared by the HTTP endpoint and the Python API of the server."""

    def __init__(self) -> None:
        self._scripts: dict[str, Script] = {}

    def register(
        self,
        key: str,
        turns: Any,
        *,
        ttft_ms: float | None = None,
        itl_ms: float | None = None,
    ) -> str:
        """Register (or replace) a script; returns the model name selecting it.

        ``turns`` is the JSON form's ``"turns"`` list. Raises :class:`ScriptError`.
        """
        data: dict[str, Any] = {"turns": turns}
        if ttft_ms is not None:
            data["ttft_ms"] = ttft_ms
        if itl_ms is not None:
            data["itl_ms"] = itl_ms
        return self.register_json(key, data)

    def register_json(self, key: str, data: Any) -> str:
        """Register a script from its full JSON form (see :class:`Script`)."""
        if not _SCRIPT_KEY.fullmatch(key):
            raise ScriptError("script key must be 1-100 characters of A-Z a-z 0-9 . _ -")
        self._scripts[key] = Script.from_json(data)
        return SCRIPT_MODEL_PREFIX + key

    def get(self, key: str) -> Script | None:
        return self._scripts.get(key)

    def remove(self, key: str) -> bool:
        """Forget a script; false if there was none."""
        return self._scripts.pop(key, None) is not None

    def keys(self) -> list[str]:
        return sorted(self._scripts)


# ---------------------------------------------------------------- echo


class EchoPolicy:
    """Generic smoke-test policy: repeats the caller ("You said: ...")."""

    def respond(self, request: ChatRequest) -> Reply:
        messages = request.messages
        if messages and messages[-1].get("role") == "tool":
            content = " ".join(message_text(messages[-1]).split())
            return Reply(text=f"The tool answered: {content[:200]}")
        for message in reversed(messages):
            if message.get("role") == "user":
                said = " ".join(message_text(message).split())
                if not said:
                    return Reply(text="I did not hear anything. Could you say that again?")
                return Reply(text=f"You said: {said}")
        return Reply(
            text="Hello, this is the Parley LLM simulator. Say something and I will repeat it."
        )


# ---------------------------------------------------------------- routing


class UnknownModelError(LookupError):
    """The request names a model the simulator does not serve."""


class PolicyRouter:
    """Maps a request to its policy (rules in the module docstring)."""

    def __init__(
        self,
        *,
        model: str,
        scripts: ScriptRegistry | None = None,
        hospital: HospitalPolicy | None = None,
    ) -> None:
        self.model = model
        self.scripts = scripts or ScriptRegistry()
        self.hospital = hospital or HospitalPolicy.load()
        self.echo = EchoPolicy()

    def model_ids(self) -> list[str]:
        """The default model, then one ``simulator-script/{key}`` per registered script."""
        return [self.model, *(SCRIPT_MODEL_PREFIX + key for key in self.scripts.keys())]

    def resolve(self, request: ChatRequest) -> Policy:
        """The policy for ``request``. Raises :class:`UnknownModelError`."""
        if request.model.startswith(SCRIPT_MODEL_PREFIX):
            script = self.scripts.get(request.model.removeprefix(SCRIPT_MODEL_PREFIX))
            if script is None:
                raise UnknownModelError(request.model)
            return ScriptPolicy(script)
        if request.model != self.model:
            raise UnknownModelError(request.model)
        if request.tool_names & self.hospital.tool_names:
            return self.hospital
        return self.echo


def offered_tool_names(tools: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Function names in an OpenAI ``tools`` list (already validated)."""
    return frozenset(str(tool["function"]["name"]) for tool in tools)
