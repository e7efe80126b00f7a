"""Evaluation scoring on hand-made logs."""

from __future__ import annotations

import pytest

from parley.evaluations.scoring import (
    RunScore,
    action_match,
    arguments_match,
    scores_aggregate,
    state_match,
)

CANCEL = {
    "name": "cancel_appointment",
    "arguments": {"patient_identifier": "P2001", "appointment_date": "2024-01-15"},
}


@pytest.mark.parametrize(
    ("expected", "actual", "result"),
    [
        ({"name": "John Smith"}, {"name": "  john SMITH "}, True),  # trimmed, case-folded
        ({"name": "John Smith"}, {"name": "Jon Smith"}, False),
        ({"name": "*"}, {"name": "anything at all"}, True),
        ({"name": "*"}, {}, True),  # a wildcard argument may be left out
        ({"name": "x", "time": "*"}, {"name": "x", "time": "9:00"}, True),
        ({"name": "x"}, {"name": "x", "extra": 1}, False),  # an argument nobody expected
        ({"name": "x", "day": "mon"}, {"name": "x"}, False),  # a required one missing
        ({"qty": 2}, {"qty": 2.0}, True),
        ({"qty": 2}, {"qty": "2"}, False),
        ({"flag": True}, {"flag": 1}, False),
        ({"items": ["A", "b"]}, {"items": ["a", "B "]}, True),
        ({"items": ["a", "b"]}, {"items": ["a"]}, False),
        ({"address": {"city": "SF", "zip": "*"}}, {"address": {"city": "sf", "zip": "9"}}, True),
    ],
)
def test_arguments_match(expected: object, actual: object, result: bool) -> None:
    assert arguments_match(expected, actual) is result


def test_every_expected_action_needs_its_own_call() -> None:
    calls = [
        {"name": "get_patient_info", "arguments": {"patient_identifier": "P2001"}},
        {
            "name": "cancel_appointment",
            "arguments": '{"patient_identifier": "p2001", "appointment_date": " 2024-01-15"}',
        },
    ]
    match = action_match([CANCEL, CANCEL], calls)  # the same action expected twice
    assert match.matched == (True, False) and not match.passed
    assert match.by_call == (1, None)
    assert match.extra_calls == 1  # get_patient_info was not expected


def test_order_of_calls_does_not_matter_and_extra_calls_are_counted() -> None:
    lookup = {"name": "get_patient_info", "arguments": {"patient_identifier": "*"}}
    calls = [
        {"name": "cancel_appointment", "arguments": dict(CANCEL["arguments"])},
        {"name": "get_patient_info", "arguments": {"patient_identifier": "John Smith"}},
        {"name": "get_patient_info", "arguments": {"patient_identifier": "P2001"}},
    ]
    match = action_match([lookup, CANCEL], calls)
    assert match.passed and match.by_call == (1, 0) and match.extra_calls == 1


def test_malformed_logged_arguments_never_match() -> None:
    match = action_match([CANCEL], [{"name": "cancel_appointment", "arguments": "{oops"}])
    assert match.matched == (False,)


def test_state_match_ignores_key_order_only() -> None:
    a = {"appointments": {"A1": {"status": "cancelled", "id": "A1"}}}
    b = {"appointments": {"A1": {"id": "A1", "status": "cancelled"}}}
    c = {"appointments": {"A1": {"id": "A1", "status": "scheduled"}}}
    assert state_match(a, b) and not state_match(a, c)


def test_aggregates_are_counts() -> None:
    runs = [
        RunScore("t1", 0, True, 2, 2, 0, True, turns=3, tokens=900, ttfa_ms=[700.0, 800.0]),
        RunScore("t1", 1, False, 1, 2, 1, True, turns=4, tokens=1000, ttfa_ms=[900.0]),
        RunScore("t2", 0, True, 1, 1, 0, False, turns=2, tokens=500),
        RunScore("t3", 0, False, 0, 1, 0, None, error="caller hung up"),
    ]
    summary = scores_aggregate(runs)
    assert summary["runs"] == 4 and summary["tasks"] == 3
    assert summary["action_match"] == {"passed": 2, "of": 4, "rate": 0.5}
    assert summary["actions"] == {"passed": 4, "of": 6, "rate": 0.667}
    assert summary["state_match"] == {"passed": 2, "of": 3, "rate": 0.667}
    assert summary["both"] == {"passed": 1, "of": 3, "rate": 0.333}
    assert summary["errors"] == 1 and summary["extra_calls"] == 1
    assert (summary["turns"], summary["tokens"]) == (9, 2400)
    assert summary["ttfa_ms"] == {"n": 3, "p50": 800.0, "max": 900.0}
    assert scores_aggregate([])["action_match"] == {"passed": 0, "of": 0, "rate": None}
