"""The JSONL transcript against its published JSON Schema: a real call with a tool call, and
lines that must be refused."""

from __future__ import annotations

import json

import jsonschema
import pytest
from channels.db import database_sync_to_async

from parley.conversations.models import Conversation
from parley.conversations.reports import transcript_line_validator
from parley.tools.hospital.seed import hospital_seed_load
from tests.agents.conftest import turn_ended, ws_call

CANCEL_LINE = (
    "I am John Smith. Please cancel my appointment with Dr. Sarah Johnson on January 15, 2024 "
    "at 9:00 AM."
)


@pytest.mark.asyncio
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_a_call_with_tool_calls_writes_lines_the_schema_accepts(
    hospital_agent, reports_dir
) -> None:  # noqa: ANN001
    await database_sync_to_async(hospital_seed_load)()
    call = await ws_call("hospital-receptionist")
    await call.communicator.send_to(text_data=json.dumps({"type": "text", "text": CANCEL_LINE}))
    await call.wait_for(turn_ended(1), timeout=90)
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    conversation_id = call.of("session.started")[0]["conversation_id"]
    conversation = await database_sync_to_async(Conversation.objects.get)(id=conversation_id)

    lines = [json.loads(line) for line in open(conversation.transcript_path)]
    validator = transcript_line_validator()
    problems = [
        (i, error.message) for i, line in enumerate(lines) for error in validator.iter_errors(line)
    ]
    assert not problems, problems
    assert lines[0]["type"] == "call.meta" and all(
        line["type"] != "call.meta" for line in lines[1:]
    )
    types = [line["type"] for line in lines]
    assert "tool.call" in types and "tool.result" in types, types
    result = next(line for line in lines if line["type"] == "tool.result")
    assert result["status"] in ("ok", "error") and isinstance(result["arguments"], dict)


META = {
    "type": "call.meta",
    "format": "parley-transcript/v1",
    "conversation_id": "4b0c6a52-6f59-4a2e-9d43-29a7d5a1a0b1",
    "agent": "a",
    "scenario": "hospital",
    "prompt_version": 1,
    "providers": {"stt": "pocketsphinx"},
    "started_at": "2026-11-21T10:00:00+00:00",
    "ended_at": None,
    "status": "ended",
}
EVENT = {
    "seq": 1,
    "type": "turn.started",
    "turn": 1,
    "t_ms": 12.5,
    "ts": META["started_at"],
    "role": "caller",
}


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ({**META, "format": "parley-transcript/v2"}, "another format"),
        ({**META, "started_at": "yesterday"}, "not a date-time"),
        ({**META, "conversation_id": "42"}, "not a uuid"),
        ({k: v for k, v in EVENT.items() if k != "seq"}, "no seq"),
        ({**EVENT, "seq": 0}, "seq starts at 1"),
        ({**EVENT, "t_ms": -1}, "negative time"),
        ({**EVENT, "role": "robot"}, "unknown role"),
        (
            {
                **EVENT,
                "type": "tool.result",
                "id": "c1",
                "name": "x",
                "result": "",
                "duration_ms": 3,
            },
            "tool.result without ok",
        ),
        ({**EVENT, "type": "error", "code": "x", "message": "y"}, "error without fatal"),
        ({**EVENT, "type": "turn.metrics", "ttfa_ms": "fast"}, "a latency that is no number"),
    ],
)
def test_the_schema_refuses_bad_lines(line: dict, why: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        transcript_line_validator().validate(line)


def test_the_schema_accepts_the_documented_examples() -> None:
    validator = transcript_line_validator()
    validator.validate(META)
    validator.validate(EVENT)
    validator.validate(
        {
            **EVENT,
            "type": "tool.result",
            "id": "c1",
            "name": "find_patient",
            "ok": True,
            "result": "{}",
            "duration_ms": 12.0,
            "arguments": {"last_name": "Smith"},
            "status": "ok",
        }
    )
