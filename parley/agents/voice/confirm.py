"""Spoken confirmation of a tool call that changes data (the agent's ``confirm_side_effects``).

Both halves are deterministic, so what the caller hears and what counts as their consent never
depend on the LLM: :func:`confirmation_question` reads the call back from the tool's name and
arguments; :func:`confirmation_answer` decides whether the caller's reply is a clear yes.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Longest question spoken (characters); longer argument lists are cut with "and more".
MAX_QUESTION_CHARS = 400

#: The tool result the LLM reads when the caller did not confirm (``{reason}``: why).
DECLINED_RESULT = (
    "Not done: the caller did not confirm this action ({reason}). Do not retry it unless "
    "the caller asks again."
)

_YES = frozenset(
    {
        "yes",
        "yeah",
        "yep",
        "yup",
        "ya",
        "sure",
        "ok",
        "okay",
        "correct",
        "right",
        "confirm",
        "confirmed",
        "absolutely",
        "definitely",
        "affirmative",
        "proceed",
    }
)
_YES_PHRASES = ("go ahead", "do it", "please do", "that's right", "sounds good", "that is right")
#: Any of these makes the answer a no, whatever else was said ("yes, no wait").
_NO = frozenset(
    {
        "no",
        "nope",
        "nah",
        "not",
        "don't",
        "dont",
        "never",
        "stop",
        "wait",
        "hold",
        "wrong",
        "incorrect",
        "but",
        "actually",
        "negative",
    }
)


def confirmation_question(*, name: str, arguments: str) -> str:
    """``"Just to confirm: cancel appointment, patient identifier John Smith, appointment date
    2024-05-01. Shall I go ahead?"`` from the tool's name and its JSON arguments (as the LLM
    produced them; arguments that are not a JSON object are left out)."""
    action = name.replace("_", " ").replace("-", " ").strip()
    try:
        parsed: Any = json.loads(arguments) if arguments else {}
    except ValueError:
        parsed = {}
    parts = [action]
    if isinstance(parsed, dict):
        for key, value in parsed.items():
            spoken = _spoken_value(value)
            if spoken:
                parts.append(f"{str(key).replace('_', ' ')} {spoken}")
    body = ", ".join(parts)
    if len(body) > MAX_QUESTION_CHARS:
        body = body[:MAX_QUESTION_CHARS].rsplit(",", 1)[0] + ", and more"
    return f"Just to confirm: {body}. Shall I go ahead?"


def _spoken_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        items = [_spoken_value(v) for v in value]
        return " and ".join(i for i in items if i)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_spoken_value(v)}" for k, v in value.items() if _spoken_value(v))
    return " ".join(str(value).split())


def confirmation_answer(text: str) -> bool | None:
    """``True`` for a clear yes ("yes please", "go ahead"), ``False`` for a no ("no",
    "don't", "yes but wait"), ``None`` when the reply is neither (another question, silence)."""
    lowered = text.lower().replace("’", "'")
    words = re.findall(r"[a-z']+", lowered)
    if any(word in _NO for word in words):
        return False
    normalised = " ".join(words)
    if any(word in _YES for word in words) or any(p in normalised for p in _YES_PHRASES):
        return True
    return None
