"""Per-call reports: the JSONL transcript and the latency report (docs/transcript-format.md).

Files are written to a temporary name and renamed into place, so a half-written file is
never seen by a reader.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import jsonschema
from django.conf import settings

from parley.agents.voice.metrics import TURN_LATENCY_COMPONENTS, latency_summary
from parley.conversations.models import Conversation

TRANSCRIPT_FORMAT = "parley-transcript/v1"
LATENCY_FORMAT = "parley-latency/v1"
#: JSON Schema (draft 2020-12) of one transcript line, published with docs/transcript-format.md.
TRANSCRIPT_LINE_SCHEMA = Path(__file__).parent / "schemas" / "transcript-line.v1.json"


def transcript_line_validator() -> jsonschema.protocols.Validator:
    """A validator of transcript lines against :data:`TRANSCRIPT_LINE_SCHEMA` (formats such as
    ``date-time`` and ``uuid`` checked). ``validator.validate(line)`` raises
    ``jsonschema.ValidationError``; ``iter_errors(line)`` lists every problem."""
    schema = json.loads(TRANSCRIPT_LINE_SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def conversation_latency_report(conversation: Conversation) -> dict[str, Any]:
    components = TURN_LATENCY_COMPONENTS
    turns = list(conversation.turns.order_by("index").values("index", "status", *components))
    return {
        "format": LATENCY_FORMAT,
        "conversation_id": str(conversation.id),
        "agent": conversation.agent.slug,
        "units": "ms",
        "turns": turns,
        "components": latency_summary((t for t in turns if t["index"] > 0), components),
    }


def conversation_transcript_lines(conversation: Conversation) -> list[dict[str, Any]]:
    """One JSON object per event, in order; tool calls carry their recorded rows."""
    started = conversation.started_at
    # Related managers (not fresh querysets), so a caller's prefetch_related("events",
    # "tool_calls") is used; the models' default orderings keep events in seq order.
    tool_rows = {tc.call_id: tc for tc in conversation.tool_calls.all()}
    lines: list[dict[str, Any]] = [
        {
            "type": "call.meta",
            "format": TRANSCRIPT_FORMAT,
            "conversation_id": str(conversation.id),
            "agent": conversation.agent.slug,
            "scenario": conversation.agent.scenario.slug,
            "prompt_version": conversation.prompt_version.version
            if conversation.prompt_version
            else None,
            "providers": conversation.providers,
            "started_at": started.isoformat(),
            "ended_at": conversation.ended_at.isoformat() if conversation.ended_at else None,
            "status": conversation.status,
        }
    ]
    for event in conversation.events.all():
        line = {
            "seq": event.seq,
            "type": event.type,
            "turn": event.turn_index,
            "t_ms": event.t_ms,
            "ts": (started + _ms(event.t_ms)).isoformat(),
            **event.data,
        }
        if event.type == "tool.result" and event.data.get("id") in tool_rows:
            row = tool_rows[event.data["id"]]
            line["arguments"] = row.arguments if row.arguments is not None else row.arguments_raw
            line["status"] = row.status
        lines.append(line)
    return lines


def conversation_transcript_jsonl(conversation: Conversation) -> bytes:
    """The call's JSONL transcript: the file the report task wrote at hang-up, or built from
    the event log when there is none yet (a live call, or before the task ran)."""
    path = Path(conversation.transcript_path) if conversation.transcript_path else None
    if path is not None and path.is_file():
        return path.read_bytes()
    return transcript_jsonl(conversation_transcript_lines(conversation)).encode()


def transcript_jsonl(lines: Iterable[dict[str, Any]]) -> str:
    """Transcript lines as JSONL text: one JSON object per line, each ending in a newline."""
    return "".join(json.dumps(line) + "\n" for line in lines)


def conversation_reports_dir(conversation: Conversation) -> Path:
    day = conversation.started_at.strftime("%Y-%m-%d")
    return Path(settings.PARLEY_REPORTS_DIR) / conversation.agent.slug / day / str(conversation.id)


@contextlib.contextmanager
def atomic_open(path: Path, *, fsync: bool = False) -> Iterator[TextIO]:
    """Write ``path`` through a temporary file in its folder, renamed into place when the
    block ends; on any exception the temporary file is removed and ``path`` is untouched, so
    a reader never sees a half-written file. ``fsync``: flush to disk before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path) as handle:
        handle.write(text)


def _ms(value: float) -> dt.timedelta:
    return dt.timedelta(milliseconds=value)
