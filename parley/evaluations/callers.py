"""Simulated callers for evaluation runs: they role-play a task's ``instructions``.

A caller sees only the task's instructions and what the agent says; never the expected
actions. Two kinds:

- :class:`LLMCaller`: a chat model of the fleet (any OpenAI-compatible endpoint) plays the
  caller from a system prompt built around the instructions. Used when the evaluation names a
  caller model pool.
- :class:`ScriptedCaller`: offline and deterministic. It says the instructions in the first
  person, answers "yes, go ahead" to a confirmation question, repeats the details when asked
  for them, and says goodbye. Crude on purpose: it measures the agent, not the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import openai

#: A caller hangs up after this many lines, whatever happens.
MAX_CALLER_TURNS = 8
#: Marker the LLM caller ends its last line with.
END_MARK = "[END]"


class Caller(Protocol):
    """Produces the caller's next line; ``None`` hangs up."""

    name: str
    #: Tokens the caller itself used (an LLM caller); 0 for a scripted one.
    tokens: int

    async def next_line(self, agent_said: str) -> str | None: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------- scripted


_PERSON = (
    (r"\byou are\b", "I am"),
    (r"\byou're\b", "I'm"),
    (r"\byou were\b", "I was"),
    (r"\byou have\b", "I have"),
    (r"\byou've\b", "I've"),
    (r"\byou don'?t\b", "I don't"),
    (r"\byourself\b", "myself"),
    (r"\byours\b", "mine"),
    (r"\byour\b", "my"),
    (r"\byou\b", "I"),
)
#: Instruction verbs that open an imperative sentence ("Process the cancellation ...").
_IMPERATIVES = frozenset(
    "add assess cancel change check close confirm create delete ensure find get identify "
    "list look make process remove retrieve review schedule set terminate update verify "
    "book move reschedule refer mark".split()
)
_CONFIRM_QUESTION = re.compile(
    r"\b(shall i|should i|would you like me|do you want me|can i go ahead|may i|"
    r"is that (?:right|correct)|confirm|proceed)\b",
    re.IGNORECASE,
)
_ANYTHING_ELSE = re.compile(r"\banything else\b", re.IGNORECASE)
_GOODBYE = re.compile(r"\b(goodbye|bye|thank you for calling|have a (?:good|great|nice))\b", re.I)
#: A sentence boundary, not after a title ("Dr. Sarah Johnson").
_SENTENCE_END = re.compile(r"(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bMrs\.)(?<=[.!?])\s+(?=[A-Z])")
_NAME_DICT = re.compile(r"\{'first_name': '([^']*)', 'last_name': '([^']*)'\}")


def first_person(instructions: str) -> list[str]:
    """The instructions as sentences a caller would say: second person turned into first,
    ``{'first_name': ..., 'last_name': ...}`` into a name, imperatives prefixed "Please",
    coaching lines ("Do not provide X until prompted") dropped."""
    text = _NAME_DICT.sub(lambda m: f"{m.group(1)} {m.group(2)}", instructions.strip())
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    said = []
    for sentence in sentences:
        if re.match(r"(?i)(do not|don't|never)\b.*\b(until|unless|prompted)\b", sentence):
            continue
        for pattern, replacement in _PERSON:
            sentence = re.sub(
                pattern,
                lambda m, r=replacement: r[0].upper() + r[1:] if m.group(0)[0].isupper() else r,
                sentence,
                flags=re.IGNORECASE,
            )
        sentence = sentence[0].upper() + sentence[1:]
        first = sentence.split(" ", 1)[0].lower()
        if first in _IMPERATIVES:
            sentence = f"Please {sentence[0].lower()}{sentence[1:]}"
        said.append(sentence)
    return said


def _details(sentences: list[str]) -> str:
    """The sentences carrying identifiers (names, numbers, emails): what to repeat when the
    agent asks for details."""
    keep = [
        s
        for s in sentences
        if re.search(r"\d|@|\b[A-Z][a-z]+ [A-Z][a-z]+\b", s) and not s.startswith("Please")
    ]
    return " ".join(keep or sentences[:1])


@dataclass
class ScriptedCaller:
    """The offline caller (rules in the module docstring)."""

    instructions: str
    max_turns: int = MAX_CALLER_TURNS
    name: str = "scripted"
    tokens: int = 0

    def __post_init__(self) -> None:
        self._sentences = first_person(self.instructions)
        self._turns = 0
        self._repeats = 0
        self._said_goodbye = False

    async def next_line(self, agent_said: str) -> str | None:
        if self._said_goodbye or self._turns >= self.max_turns:
            return None
        self._turns += 1
        if self._turns == 1:
            return " ".join(self._sentences) or "Hello?"
        closing = _GOODBYE.search(agent_said) and not agent_said.rstrip().endswith("?")
        if closing or _ANYTHING_ELSE.search(agent_said):
            return self._goodbye()
        if "?" in agent_said:
            if _CONFIRM_QUESTION.search(agent_said):
                return "Yes, please go ahead."
            if self._repeats < 2:
                self._repeats += 1
                return _details(self._sentences)
        return self._goodbye()

    def _goodbye(self) -> str:
        self._said_goodbye = True
        return "No, that's all. Thank you, goodbye."

    async def aclose(self) -> None:
        return None


# ---------------------------------------------------------------- LLM


CALLER_SYSTEM_PROMPT = """You are role-playing a person who phones an enterprise voice agent.
Your situation and goal (speak as this person, in the first person):

{instructions}

Rules: say only what the caller would say out loud, one or two short sentences per turn. Give
details when the agent asks for them. Never mention these rules or that you are role-playing.
When your goal is reached, or the agent cannot help, say goodbye and end that message with
{end}."""


class LLMCaller:
    """A caller played by a chat model over the OpenAI-compatible API (non-streaming).

    Raises ``openai.OpenAIError`` subclasses from :meth:`next_line` when the endpoint fails.
    """

    def __init__(
        self,
        *,
        instructions: str,
        base_url: str,
        model: str,
        api_key: str = "not-needed",
        temperature: float = 0.3,
        max_tokens: int = 150,
        timeout_s: float = 60.0,
        max_turns: int = MAX_CALLER_TURNS,
    ) -> None:
        self.name = f"llm:{model}"
        self.tokens = 0
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_turns = max_turns
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=1
        )
        self._messages: list[dict[str, str]] = [
            {
                "role": "system",
                "content": CALLER_SYSTEM_PROMPT.format(instructions=instructions, end=END_MARK),
            }
        ]
        self._turns = 0
        self._ended = False

    async def next_line(self, agent_said: str) -> str | None:
        if self._ended or self._turns >= self.max_turns:
            return None
        self._turns += 1
        # The agent is the caller model's "user"; the caller's own lines are "assistant".
        self._messages.append(
            {"role": "user", "content": agent_said or "(The agent picked up. Say why you call.)"}
        )
        response = await self._client.chat.completions.create(
            model=self.model,
            messages=self._messages,  # type: ignore[arg-type]
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        if response.usage is not None:
            self.tokens += response.usage.total_tokens
        line = (response.choices[0].message.content or "").strip() if response.choices else ""
        self._messages.append({"role": "assistant", "content": line})
        if END_MARK in line:
            self._ended = True
            line = line.replace(END_MARK, "").strip()
        return line or None

    async def aclose(self) -> None:
        await self._client.close()
