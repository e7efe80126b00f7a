"""Redaction of phone numbers, e-mail addresses and dates (of birth) in exported transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parley.conversations.redaction import (
    DATE,
    DOB,
    EMAIL,
    PHONE,
    key_label,
    redact_text,
    redact_value,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Phone numbers, written.
        ("Call me at 555-1001 please.", "Call me at [PHONE] please."),
        ("555-1001.", "[PHONE]."),
        ("(555) 123-4567", PHONE),
        ("(555)123-4567", PHONE),
        ("555.123.4567", PHONE),
        ("555 123 4567", PHONE),
        ("5551234567", PHONE),
        ("1-800-555-0199", PHONE),
        ("+1 (555) 123-4567", PHONE),
        ("+11557762449", PHONE),  # the HR scenario's E.164 numbers
        ("+44 20 7946 0958", PHONE),
        ("+49 30 1234567", PHONE),
        ("phone:+33 1 23 45 67 89, thanks", "phone:[PHONE], thanks"),
        # Phone numbers, spoken (at least seven digits in a row).
        ("my number is five five five one two three four", "my number is [PHONE]"),
        ("it's double five five, one two three four", "it's [PHONE]"),
        ("five, five, five - one two three four", PHONE),
        ("oh seven seven double nine, one two three four five six", PHONE),
        ("five five five 1234", PHONE),
        ("Five Five Five One Two Three Four.", "[PHONE]."),
        # E-mail addresses.
        ("john.smith@hospital.com", EMAIL),
        ("Email ME at JOHN.SMITH+clinic@Example.CO.UK.", "Email ME at [EMAIL]."),
        ("admin@next-genadvanced&premier.com", EMAIL),  # as the HR scenario data has them
        ("write to john dot smith at example dot com", "write to [EMAIL]"),
        ("reach me at jane_doe at mail dot example dot org ok", "reach me at [EMAIL] ok"),
        # Dates of birth: with a birth cue nearby.
        ("born 2020-01-31", "born [DOB]"),
        ("DOB 01/31/1990", "DOB [DOB]"),
        ("D.O.B.: 31.01.1990", "D.O.B.: [DOB]"),
        ("my date of birth is 03/04/85", "my date of birth is [DOB]"),
        ("date of birth March 4, 1985", "date of birth [DOB]"),
        ("I was born on the 4th of July, 1976", "I was born on [DOB]"),
        ("birthday: 4 March 1985", "birthday: [DOB]"),
        ("my date of birth is March fourth nineteen eighty five", "my date of birth is [DOB]"),
        ("born March the twenty-first, nineteen oh five", "born [DOB]"),
        ("born the fourth of March, two thousand and three", "born [DOB]"),
        ('"date_of_birth": "1985-03-04T00:00:00Z"', '"date_of_birth": "[DOB]"'),
        ("1985-03-04 is my birthday", "[DOB] is my birthday"),
        # Other full dates: removed too, without claiming they are a birth.
        ("2020-01-31", DATE),
        ("2020/01/31", DATE),
        ("31.01.1990", DATE),
        ("9/11/2001", DATE),
        ("3-4-85", DATE),
        ("March 4, 1985", DATE),
        ("Mar. 4 1985", DATE),
        ("4 March 1985", DATE),
        ("Sept 30th, 2024", DATE),
        ("appointment 2024-01-25 at 9:00 AM", "appointment [DATE] at 9:00 AM"),
    ],
)
def test_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        # Times, prices, quantities.
        "See you at 10:30.",
        "at 10:30:15",
        "2:00 PM",
        "It costs $12.50.",
        "$ 12.50",
        "The total is $1,234,567.",
        "1,299.00 dollars",
        "1.5 million",
        "I have 2 orders and 3 items",
        "1/2 cup, 24/7, 50/50",
        # Identifiers of the scenario data.
        "order ORD-1042",
        "Order O1001 for customer C1001, SKU123,SKU456, tracking TRK1001",
        "patient P2001, doctor D1002, appointment A3001",
        "USR-000001 ORG-000001 SUB-123456 DT-654321 EMP-00001 DEPT101",
        "order one zero four two",
        "reference 4421 8890 1234",
        "12 34 56 78",
        # Short numbers, codes, addresses.
        "Call 911",
        "nine one one",
        "one two three four five six",
        "ext. 1234",
        "123 Main St, Apt 4B, New York, NY 10001",
        "zip 10001-1234",
        "room 555",
        # Dates without a year, bare years, impossible dates.
        "March 4",
        "on the fourth",
        "May 2020",
        "in 2019 and 2020",
        "13/13/1990",
        "He may 4 times",
        # Machine values: timestamps, UUIDs, versions, addresses, tool names.
        "2026-11-20T22:40:01.123456+00:00",
        "123e4567-e89b-12d3-a456-426614174000",
        "version 2.1.10",
        "10.0.0.1",
        "find_user_by_email",
        "verified_email",
        "parley-transcript/v1",
        "",
    ],
)
def test_kept(text: str) -> None:
    assert redact_text(text) == text


def test_several_kinds_in_one_text() -> None:
    text = (
        "Hi, I'm Ana, born 4 March 1985. Reach me on 555-123-4567 or ana@example.com "
        "about order ORD-1042 ($12.50) at 10:30 on 2026-03-09."
    )
    assert redact_text(text) == (
        "Hi, I'm Ana, born [DOB]. Reach me on [PHONE] or [EMAIL] "
        "about order ORD-1042 ($12.50) at 10:30 on [DATE]."
    )


def test_long_inputs_stay_fast() -> None:
    import time

    texts = [
        " - " * 5000 + "dash " * 3000,
        "one, " * 5000 + "x",
        "a-" * 20000,
        "a@" * 20000 + "a.b." * 5000,
        "the fourth of March " * 2000,
    ]
    started = time.perf_counter()
    for text in texts:
        redact_text(text)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("phone", PHONE),
        ("emergency_phone", PHONE),
        ("contact_phone", PHONE),
        ("phoneNumber", PHONE),
        ("telephone", PHONE),
        ("mobile", PHONE),
        ("fax", PHONE),
        ("email", EMAIL),
        ("primary_email", EMAIL),
        ("e-mail", EMAIL),
        ("emailAddress", EMAIL),
        ("date_of_birth", DOB),
        ("dob", DOB),
        ("DOB", DOB),
        ("birth_date", DOB),
        ("birthDate", DOB),
        ("birthday", DOB),
        ("microphone", None),
        ("headphones", None),
        ("appointment_date", None),
        ("patient_id", None),
        ("name", None),
        ("method", None),
    ],
)
def test_key_labels(key: str, label: str | None) -> None:
    assert key_label(key) == label


def test_redact_value_walks_json() -> None:
    line = {
        "seq": 12,
        "type": "tool.result",
        "turn": 2,
        "t_ms": 5551234.0,
        "ts": "2026-03-04T10:30:00+00:00",
        "name": "find_patient",
        "arguments": {
            "email": "john.smith@hospital.com",
            "date_of_birth": "1985-03-04",
            "phone": 5551001,
            "contact": {"phone_numbers": ["555-1001", "555-1002"], "verified_email": True},
            "dob": None,
            "patient_id": "P2001",
        },
        "result": json.dumps({"patient_id": "P2001", "phone": "555-1001", "email": "a@b.com"}),
        "items": ["call me at 555-1003", 42, None, True],
    }
    original = json.loads(json.dumps(line))
    redacted = redact_value(line)
    assert line == original  # not changed in place
    assert redacted == {
        "seq": 12,
        "type": "tool.result",
        "turn": 2,
        "t_ms": 5551234.0,
        "ts": "2026-03-04T10:30:00+00:00",
        "name": "find_patient",
        "arguments": {
            "email": EMAIL,
            "date_of_birth": DOB,
            "phone": PHONE,
            "contact": {"phone_numbers": PHONE, "verified_email": True},
            "dob": None,
            "patient_id": "P2001",
        },
        "result": '{"patient_id": "P2001", "phone": "[PHONE]", "email": "[EMAIL]"}',
        "items": ["call me at [PHONE]", 42, None, True],
    }


def test_preserved_keys_keep_the_call_clock() -> None:
    meta = {
        "type": "call.meta",
        "format": "parley-transcript/v1",
        "conversation_id": "123e4567-e89b-12d3-a456-426614174000",
        "started_at": "2026-03-04T10:30:00+00:00",
        "ended_at": "2026-03-04T10:31:00+00:00",
        "providers": {"stt": "pocketsphinx"},
    }
    assert redact_value(meta) == meta


def _scenario_values(obj, key=None):  # noqa: ANN001, ANN202
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _scenario_values(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _scenario_values(v, key)
    elif isinstance(obj, str):
        yield (key or "").lower(), obj


def test_scenario_data_phones_and_emails_are_caught_and_ids_kept() -> None:
    files = sorted((ROOT / "parley" / "tools").glob("*/data/*.json"))
    files += sorted((ROOT / "tests" / "fixtures" / "scenarios").glob("*/expected.json"))
    assert files
    seen = {"phone": 0, "email": 0, "id": 0}
    for path in files:
        for key, value in _scenario_values(json.loads(path.read_text())):
            if "phone" in key:
                assert redact_text(value) == PHONE, (path.name, key, value)
                seen["phone"] += 1
            elif "email" in key:
                assert redact_text(value) == EMAIL, (path.name, key, value)
                seen["email"] += 1
            elif key.endswith("id") or key in ("tracking_number", "items", "coupon_code"):
                assert redact_text(value) == value, (path.name, key, value)
                seen["id"] += 1
    assert min(seen.values()) > 50, seen
