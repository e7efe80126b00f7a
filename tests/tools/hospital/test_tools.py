"""The 12 hospital tools, run the way the platform runs them: through ``tool_run``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from parley.tools.hospital import tools
from parley.tools.hospital.models import (
    Appointment,
    Department,
    Doctor,
    LabResult,
    Patient,
    Referral,
)
from parley.tools.hospital.seed import hospital_state_digest
from parley.tools.registry import ToolOutcome, scenario_tools, tool_run

pytestmark = pytest.mark.usefixtures("hospital_seeded")

TOOLS_JSON = Path(tools.__file__).resolve().parent / "tools.json"


def run(name: str, arguments: dict[str, Any] | str) -> ToolOutcome:
    return tool_run(scenario="hospital", name=name, arguments=arguments)


def ok_json(name: str, arguments: dict[str, Any]) -> Any:
    """Run a call that must succeed; its result parsed."""
    outcome = run(name, arguments)
    assert outcome.ok, outcome.content
    return json.loads(outcome.content)


def error(name: str, arguments: dict[str, Any] | str) -> str:
    """Run a call that must fail without changing any data; its error text."""
    before = hospital_state_digest()
    outcome = run(name, arguments)
    assert not outcome.ok, outcome.content
    assert outcome.content.startswith("Error: ")
    assert hospital_state_digest() == before
    return outcome.content


# --- registration and argument validation -------------------------------------------------


def test_every_tool_of_tools_json_is_registered_with_its_schema() -> None:
    schemas = {t["function"]["name"]: t["function"] for t in json.loads(TOOLS_JSON.read_text())}
    registered = scenario_tools(scenario="hospital")
    assert sorted(registered) == sorted(schemas) and len(registered) == 12
    for name, spec in registered.items():
        assert spec.parameters == schemas[name]["parameters"]
        assert spec.func is tools.HOSPITAL_TOOLS[name]
    assert {n for n, s in registered.items() if s.side_effecting} == {
        "cancel_appointment",
        "create_referral",
        "schedule_appointment",
        "update_emergency_contact",
        "update_referral_status",
    }


def test_missing_required_argument_is_an_error_result() -> None:
    assert error("get_patient_info", {}) == (
        "Error: invalid arguments for get_patient_info: 'patient_identifier' is a required property"
    )


def test_missing_required_argument_of_a_writing_tool_writes_nothing() -> None:
    content = error(
        "create_referral",
        {
            "patient_identifier": "Jennifer Brown",
            "referring_doctor_identifier": "Dr. Robert Chen",
            "referred_to_doctor_identifier": "Dr. Jennifer Martinez",
        },
    )
    assert content == (
        "Error: invalid arguments for create_referral: "
        "'referred_to_department' is a required property"
    )
    assert Referral.objects.count() == 10


def test_wrong_argument_type_is_an_error_result() -> None:
    assert error("get_patient_info", {"patient_identifier": 2001}) == (
        "Error: invalid arguments for get_patient_info: 2001 is not of type 'string' "
        "(at patient_identifier)"
    )
    assert error(
        "get_doctor_referrals", {"doctor_identifier": "D1003", "referral_type": None}
    ).startswith("Error: invalid arguments for get_doctor_referrals: None is not of type 'string'")


def test_arguments_given_as_json_text() -> None:
    assert run("get_patient_info", '{"patient_identifier": "P2001"}').ok
    assert error("get_patient_info", '{"patient_identifier": ').startswith(
        "Error: arguments for get_patient_info are not valid JSON"
    )


# --- get_patient_info -----------------------------------------------------------------------

JOHN_SMITH = {
    "patient_id": "P2001",
    "name": "John Smith",
    "email": "john.smith@hospital.com",
    "phone": "555-1001",
    "emergency_contact": "Mary Smith",
    "emergency_phone": "555-1002",
}


@pytest.mark.parametrize("identifier", ["P2001", "John Smith", "john smith", "JOHN SMITH"])
def test_get_patient_info_by_id_or_name(identifier: str) -> None:
    outcome = run("get_patient_info", {"patient_identifier": identifier})
    assert outcome.ok
    assert outcome.content == json.dumps(JOHN_SMITH)


@pytest.mark.parametrize("identifier", ["Nobody", "p2001", "John  Smith", " John Smith"])
def test_get_patient_info_unknown_patient(identifier: str) -> None:
    # Ids match exactly (case-sensitive); names only ignore case.
    assert error("get_patient_info", {"patient_identifier": identifier}) == (
        f"Error: Patient '{identifier}' not found"
    )


def test_patient_name_lookup_takes_the_first_in_insertion_order() -> None:
    Patient.objects.create(patient_id="P1000", name="john SMITH", email="other@example.com")
    assert ok_json("get_patient_info", {"patient_identifier": "John Smith"})["patient_id"] == (
        "P2001"
    )


def test_patient_name_lookup_folds_non_ascii_case() -> None:
    Patient.objects.create(patient_id="P2016", name="Zoë Ångström")
    result = ok_json("get_patient_info", {"patient_identifier": "ZOË ÅNGSTRÖM"})
    assert result["patient_id"] == "P2016"
    # json.dumps keeps ensure_ascii, like the reference.
    assert "\\u00eb" in run("get_patient_info", {"patient_identifier": "P2016"}).content


def test_nul_in_identifier_is_not_found_rather_than_a_crash() -> None:
    assert error("get_patient_info", {"patient_identifier": "P20\x0001"}) == (
        "Error: Patient 'P20\x0001' not found"
    )


# --- get_doctor_info ------------------------------------------------------------------------

SARAH_JOHNSON = {
    "doctor_id": "D1002",
    "name": "Dr. Sarah Johnson",
    "specialty": "Cardiology",
    "department": "Cardiology",
    "phone": "555-2002",
}


@pytest.mark.parametrize(
    "identifier",
    ["D1002", "Dr. Sarah Johnson", "Sarah Johnson", "dr. sarah johnson", "SARAH JOHNSON"],
)
def test_get_doctor_info_by_id_or_name_with_or_without_title(identifier: str) -> None:
    outcome = run("get_doctor_info", {"doctor_identifier": identifier})
    assert outcome.ok
    assert outcome.content == json.dumps(SARAH_JOHNSON)


@pytest.mark.parametrize("identifier", ["Dr. Michael Johnson", "d1002", "Dr Sarah Johnson", ""])
def test_get_doctor_info_unknown_doctor(identifier: str) -> None:
    assert error("get_doctor_info", {"doctor_identifier": identifier}) == (
        f"Error: Doctor '{identifier}' not found"
    )


def test_doctor_stored_without_title_is_found_with_it() -> None:
    Doctor.objects.create(
        doctor_id="D1011", name="Jane Roe", specialty="Neurology", department_id="Neurology"
    )
    assert ok_json("get_doctor_info", {"doctor_identifier": "Dr. Jane Roe"})["doctor_id"] == "D1011"
    assert ok_json("get_doctor_info", {"doctor_identifier": "jane roe"})["doctor_id"] == "D1011"


def test_doctor_name_lookup_takes_the_first_in_insertion_order() -> None:
    # "sarah johnson" matches D1002 ("Dr. ..." stripped) and this one (exact): D1002 is first.
    Doctor.objects.create(
        doctor_id="D0001", name="Sarah Johnson", specialty="Cardiology", department_id="Cardiology"
    )
    assert ok_json("get_doctor_info", {"doctor_identifier": "Sarah Johnson"})["doctor_id"] == (
        "D1002"
    )


# --- get_appointment ------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["P2001", "John Smith"])
def test_get_appointment_returns_the_first_scheduled_one(identifier: str) -> None:
    outcome = run("get_appointment", {"patient_identifier": identifier})
    assert outcome.ok
    assert outcome.content == json.dumps(
        {
            "appointment_id": "A3001",
            "patient_id": "P2001",
            "patient_name": "John Smith",
            "doctor_id": "D1002",
            "doctor_name": None,  # as the reference: it reads a field appointments lack
        }
    )


def test_get_appointment_skips_non_scheduled_ones() -> None:
    # Robert Wilson's only appointment (A3005) is completed; the error quotes the identifier.
    assert error("get_appointment", {"patient_identifier": "robert wilson"}) == (
        "Error: No appointment found for patient 'robert wilson'"
    )
    Appointment.objects.filter(pk="A3001").update(status="cancelled")
    assert error("get_appointment", {"patient_identifier": "P2001"}) == (
        "Error: No appointment found for patient 'P2001'"
    )


def test_get_appointment_unknown_patient() -> None:
    assert error("get_appointment", {"patient_identifier": "P9999"}) == (
        "Error: Patient 'P9999' not found"
    )


# --- get_lab_results ------------------------------------------------------------------------


def test_get_lab_results_newest_first_ties_in_insertion_order() -> None:
    result = ok_json("get_lab_results", {"patient_identifier": "Robert Wilson"})
    assert result["patient_id"] == "P2008" and result["patient_name"] == "Robert Wilson"
    # L5008 and L5009 share 2024-01-17: a stable sort keeps the file order.
    assert [r["result_id"] for r in result["lab_results"]] == ["L5008", "L5009"]
    result = ok_json("get_lab_results", {"patient_identifier": "P2005"})
    assert [r["result_id"] for r in result["lab_results"]] == ["L5021", "L5005"]
    assert list(result["lab_results"][0]) == [
        "patient_id",
        "test_name",
        "test_date",
        "status",
        "doctor_id",
        "result_id",
    ]


def test_get_lab_results_none_and_unknown_patient() -> None:
    Patient.objects.create(patient_id="P2016", name="New Patient")
    assert error("get_lab_results", {"patient_identifier": "P2016"}) == (
        "Error: No lab results found for patient 'New Patient'"
    )
    assert error("get_lab_results", {"patient_identifier": "Nobody"}) == (
        "Error: Patient 'Nobody' not found"
    )


def test_get_lab_results_does_not_depend_on_primary_key_order() -> None:
    LabResult.objects.create(
        result_id="L0001",  # sorts before every id, but is the newest row and the latest date
        patient_id="P2001",
        test_name="Troponin",
        test_date=dt.date(2024, 1, 12),
        status="pending",
        doctor_id="D1002",
    )
    result = ok_json("get_lab_results", {"patient_identifier": "P2001"})
    assert [r["result_id"] for r in result["lab_results"]] == ["L5003", "L0001", "L5001"]


# --- get_patient_medications ---------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["P2005", "jennifer brown"])
def test_get_patient_medications_in_insertion_order(identifier: str) -> None:
    result = ok_json("get_patient_medications", {"patient_identifier": identifier})
    assert result["patient_id"] == "P2005" and result["patient_name"] == "Jennifer Brown"
    assert [m["medication_id"] for m in result["medications"]] == ["M4003", "M4004"]


def test_get_patient_medications_none_and_unknown_patient() -> None:
    assert error("get_patient_medications", {"patient_identifier": "David Wilson"}) == (
        "Error: No medications found for patient 'David Wilson'"
    )
    assert error("get_patient_medications", {"patient_identifier": "Nobody"}) == (
        "Error: Patient 'Nobody' not found"
    )


# --- get_patient_referrals -----------------------------------------------------------------


def test_get_patient_referrals_newest_first() -> None:
    ok_json(
        "create_referral",
        {
            "patient_identifier": "P2005",
            "referring_doctor_identifier": "D1004",
            "referred_to_doctor_identifier": "D1007",
            "referred_to_department": "Neurology",
        },
    )
    result = ok_json("get_patient_referrals", {"patient_identifier": "Jennifer Brown"})
    assert result["total_referrals"] == 2
    assert [r["referral_id"] for r in result["referrals"]] == ["R6011", "R6003"]


def test_get_patient_referrals_none_is_a_message_not_an_error() -> None:
    outcome = run("get_patient_referrals", {"patient_identifier": "P2004"})
    assert outcome.ok
    assert outcome.content == json.dumps(
        {
            "message": "No referrals found for patient 'David Wilson'",
            "patient_id": "P2004",
            "patient_name": "David Wilson",
            "referrals": [],
        }
    )
    assert error("get_patient_referrals", {"patient_identifier": "Nobody"}) == (
        "Error: Patient 'Nobody' not found"
    )


# --- get_doctor_referrals ------------------------------------------------------------------


def test_get_doctor_referrals_all_is_the_default() -> None:
    result = ok_json("get_doctor_referrals", {"doctor_identifier": "Amanda Taylor"})
    assert result["doctor_id"] == "D1003" and result["referral_type"] == "all"
    assert [r["referral_id"] for r in result["referrals"]] == [
        "R6010",
        "R6008",
        "R6006",
        "R6004",
        "R6002",
    ]
    assert result["total_referrals"] == 5
    # Statuses counted in the order they first appear in the sorted list.
    assert list(result["status_summary"].items()) == [
        ("pending", 2),
        ("completed", 1),
        ("scheduled", 2),
    ]


def test_get_doctor_referrals_outgoing_and_incoming() -> None:
    outgoing = ok_json(
        "get_doctor_referrals", {"doctor_identifier": "D1003", "referral_type": "outgoing"}
    )
    assert [r["referral_id"] for r in outgoing["referrals"]] == ["R6008", "R6004", "R6002"]
    incoming = ok_json(
        "get_doctor_referrals", {"doctor_identifier": "D1003", "referral_type": "incoming"}
    )
    assert [r["referral_id"] for r in incoming["referrals"]] == ["R6010", "R6006"]


def test_get_doctor_referrals_none_is_a_message_not_an_error() -> None:
    outcome = run("get_doctor_referrals", {"doctor_identifier": "D1005", "referral_type": "all"})
    assert outcome.ok
    assert outcome.content == json.dumps(
        {
            "message": "No all referrals found for Dr. Michael Chen",
            "doctor_id": "D1005",
            "doctor_name": "Dr. Michael Chen",
            "referral_type": "all",
            "referrals": [],
        }
    )


def test_get_doctor_referrals_errors() -> None:
    assert error("get_doctor_referrals", {"doctor_identifier": "Dr. Who"}) == (
        "Error: Doctor 'Dr. Who' not found"
    )
    assert error(
        "get_doctor_referrals", {"doctor_identifier": "D1003", "referral_type": "Incoming"}
    ) == ("Error: Referral type must be one of: all, outgoing, incoming")


# --- schedule_appointment ------------------------------------------------------------------

NEW_APPOINTMENT = {
    "patient_identifier": "Emily Davis",
    "doctor_identifier": "Sarah Johnson",
    "appointment_time": "10:00 AM",
    "appointment_date": "2024-01-25",
    "department": "Cardiology",
}


def test_schedule_appointment_writes_the_next_appointment() -> None:
    outcome = run("schedule_appointment", NEW_APPOINTMENT)
    record = {
        "appointment_id": "A3006",
        "patient_id": "P2015",
        "doctor_id": "D1002",
        "appointment_time": "10:00 AM",
        "appointment_date": "2024-01-25",
        "department": "Cardiology",
        "status": "scheduled",
    }
    assert outcome.ok
    assert outcome.content == json.dumps(
        {"message": "Appointment scheduled successfully", "appointment": record}
    )
    row = Appointment.objects.get(pk="A3006")
    assert row.as_record() == record
    assert row.position == 5  # appended after the seed's five appointments

    again = dict(NEW_APPOINTMENT, patient_identifier="P2015", appointment_time="11:00 AM")
    assert ok_json("schedule_appointment", again)["appointment"]["appointment_id"] == "A3007"


def test_schedule_appointment_refuses_a_duplicate_scheduled_one() -> None:
    ok_json("schedule_appointment", NEW_APPOINTMENT)
    assert error("schedule_appointment", NEW_APPOINTMENT) == (
        "Error: This appointment is already scheduled"
    )
    # Once cancelled, the same slot can be booked again (as a new appointment).
    ok_json(
        "cancel_appointment",
        {k: v for k, v in NEW_APPOINTMENT.items() if k != "department"},
    )
    assert ok_json("schedule_appointment", NEW_APPOINTMENT)["appointment"]["appointment_id"] == (
        "A3007"
    )


def test_schedule_appointment_errors() -> None:
    assert error("schedule_appointment", dict(NEW_APPOINTMENT, department="Psychiatry")) == (
        "Error: Doctor Dr. Sarah Johnson is not in Psychiatry department"
    )
    assert error("schedule_appointment", dict(NEW_APPOINTMENT, department="cardiology")) == (
        "Error: Doctor Dr. Sarah Johnson is not in cardiology department"
    )
    assert error("schedule_appointment", dict(NEW_APPOINTMENT, patient_identifier="Nobody")) == (
        "Error: Patient 'Nobody' not found"
    )
    assert error("schedule_appointment", dict(NEW_APPOINTMENT, doctor_identifier="D0000")) == (
        "Error: Doctor 'D0000' not found"
    )


def test_new_ids_continue_after_the_highest_number() -> None:
    Appointment.objects.create(
        appointment_id="A3100",
        patient_id="P2001",
        doctor_id="D1002",
        appointment_time="9:00 AM",
        appointment_date="2024-05-01",
        department_id="Cardiology",
    )
    Appointment.objects.create(  # not in the A<number> scheme: ignored
        appointment_id="APPT-9",
        patient_id="P2001",
        doctor_id="D1002",
        appointment_time="9:30 AM",
        appointment_date="2024-05-01",
        department_id="Cardiology",
    )
    result = ok_json("schedule_appointment", NEW_APPOINTMENT)
    assert result["appointment"]["appointment_id"] == "A3101"


# --- cancel_appointment --------------------------------------------------------------------

CANCEL_A3001 = {
    "patient_identifier": "John Smith",
    "doctor_identifier": "Dr. Sarah Johnson",
    "appointment_date": "2024-01-15",
    "appointment_time": "9:00 AM",
}


def test_cancel_appointment_sets_the_status() -> None:
    outcome = run("cancel_appointment", CANCEL_A3001)
    assert outcome.ok
    assert outcome.content == json.dumps(
        {
            "message": "Appointment cancelled successfully",
            "appointment_id": "A3001",
            "patient_id": "P2001",
            "patient_name": "John Smith",
            "doctor_id": "D1002",
            "doctor_name": "Dr. Sarah Johnson",
            "appointment_date": "2024-01-15",
            "appointment_time": "9:00 AM",
            "status": "cancelled",
        }
    )
    assert Appointment.objects.get(pk="A3001").status == "cancelled"
    assert error("cancel_appointment", CANCEL_A3001) == "Error: Appointment is already cancelled"


def test_cancel_appointment_by_ids() -> None:
    args = dict(CANCEL_A3001, patient_identifier="P2001", doctor_identifier="D1002")
    assert ok_json("cancel_appointment", args)["appointment_id"] == "A3001"


def test_cancel_appointment_errors() -> None:
    assert error(
        "cancel_appointment",
        {
            "patient_identifier": "P2008",
            "doctor_identifier": "D1007",
            "appointment_date": "2024-01-19",
            "appointment_time": "10:00 AM",
        },
    ) == ("Error: Cannot cancel a completed appointment")
    assert error("cancel_appointment", dict(CANCEL_A3001, appointment_time="9:00 am")) == (
        "Error: Appointment not found for John Smith with Dr. Sarah Johnson "
        "on 2024-01-15 at 9:00 am"
    )
    assert error("cancel_appointment", dict(CANCEL_A3001, patient_identifier="Nobody")) == (
        "Error: Patient 'Nobody' not found"
    )
    assert error("cancel_appointment", dict(CANCEL_A3001, doctor_identifier="Dr. Nobody")) == (
        "Error: Doctor 'Dr. Nobody' not found"
    )


# --- update_emergency_contact --------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["P2008", "Robert Wilson"])
def test_update_emergency_contact_writes_the_patient(identifier: str) -> None:
    outcome = run(
        "update_emergency_contact",
        {
            "patient_identifier": identifier,
            "contact_name": "Lisa Wilson",
            "contact_phone": "555-9876",
        },
    )
    assert outcome.ok
    assert outcome.content == json.dumps(
        {
            "message": "Emergency contact updated successfully",
            "patient_id": "P2008",
            "patient_name": "Robert Wilson",
            "emergency_contact": "Lisa Wilson",
            "emergency_phone": "555-9876",
        }
    )
    patient = Patient.objects.get(pk="P2008")
    assert (patient.emergency_contact, patient.emergency_phone) == ("Lisa Wilson", "555-9876")


def test_update_emergency_contact_unknown_patient() -> None:
    assert error(
        "update_emergency_contact",
        {"patient_identifier": "Nobody", "contact_name": "X", "contact_phone": "1"},
    ) == ("Error: Patient 'Nobody' not found")


# --- create_referral -----------------------------------------------------------------------

NEW_REFERRAL = {
    "patient_identifier": "Alice Johnson",
    "referring_doctor_identifier": "Dr. John Adams",
    "referred_to_doctor_identifier": "Sarah Johnson",
    "referred_to_department": "Cardiology",
    "priority": "urgent",
}


def test_create_referral_writes_a_pending_referral_dated_today(frozen_today: dt.date) -> None:
    outcome = run("create_referral", NEW_REFERRAL)
    record = {
        "referral_id": "R6011",
        "patient_id": "P2002",
        "referring_doctor_id": "D1001",
        "referred_to_doctor_id": "D1002",
        "referring_department": "Emergency",
        "referred_to_department": "Cardiology",
        "referral_date": "2025-01-01",
        "status": "pending",
        "priority": "urgent",
    }
    assert outcome.ok
    assert outcome.content == json.dumps(
        {"message": "Referral created successfully", "referral": record}
    )
    row = Referral.objects.get(pk="R6011")
    assert row.as_record() == record
    assert row.position == 10


def test_create_referral_priority_defaults_to_routine(frozen_today: dt.date) -> None:
    args = {k: v for k, v in NEW_REFERRAL.items() if k != "priority"}
    args["patient_identifier"] = "P2002"
    result = ok_json("create_referral", args)
    assert result["referral"]["priority"] == "routine"


def test_create_referral_uses_the_real_date_when_not_frozen() -> None:
    assert tools.today() == timezone.localdate()
    result = ok_json("create_referral", NEW_REFERRAL)
    assert result["referral"]["referral_date"] == timezone.localdate().isoformat()


def test_create_referral_errors() -> None:
    assert error("create_referral", dict(NEW_REFERRAL, patient_identifier="Nobody")) == (
        "Error: Patient 'Nobody' not found"
    )
    assert error(
        "create_referral", dict(NEW_REFERRAL, referring_doctor_identifier="Dr. Shaunak Joshi")
    ) == ("Error: Referring doctor 'Dr. Shaunak Joshi' not found")
    assert error(
        "create_referral", dict(NEW_REFERRAL, referred_to_doctor_identifier="Dr. Michael Johnson")
    ) == ("Error: Referred-to doctor 'Dr. Michael Johnson' not found")
    # The reference prefixes "Dr." to a name that already has it; kept for fidelity.
    assert error("create_referral", dict(NEW_REFERRAL, referred_to_department="Neurology")) == (
        "Error: Dr. Dr. Sarah Johnson is not in Neurology department"
    )
    assert error("create_referral", dict(NEW_REFERRAL, priority="high")) == (
        "Error: Priority must be one of: urgent, routine, stat"
    )


# --- update_referral_status ----------------------------------------------------------------


def test_update_referral_status_changes_the_first_matching_referral() -> None:
    outcome = run(
        "update_referral_status",
        {
            "patient_identifier": "Emily Davis",
            "referred_to_doctor_identifier": "Dr. Amanda Taylor",
            "new_status": "scheduled",
        },
    )
    assert outcome.ok
    assert outcome.content == json.dumps(
        {
            "message": "Referral status updated successfully from 'pending' to 'scheduled'",
            "referral_id": "R6010",
            "patient_name": "Emily Davis",
            "referred_to_doctor_name": "Dr. Amanda Taylor",
            "old_status": "pending",
            "new_status": "scheduled",
            "referral": {
                "referral_id": "R6010",
                "patient_id": "P2015",
                "referring_doctor_id": "D1002",
                "referred_to_doctor_id": "D1003",
                "referring_department": "Cardiology",
                "referred_to_department": "Internal Medicine",
                "referral_date": "2024-01-23",
                "status": "scheduled",
                "priority": "routine",
            },
        }
    )
    assert Referral.objects.get(pk="R6010").status == "scheduled"


NO_REFERRAL = "Error: No referral found for patient 'Jennifer Brown' to doctor 'Dr. Robert Chen'"
BAD_STATUS = "Error: Status must be one of: pending, scheduled, completed, cancelled"


@pytest.mark.parametrize(
    ("patient", "doctor", "new_status", "message"),
    [
        ("P2015", "D1003", "done", BAD_STATUS),
        ("P2003", "D1009", "scheduled", "Error: Referral is already scheduled"),
        ("P2001", "D1002", "completed", "Error: Referral is already completed"),
        ("P2001", "D1002", "pending", "Error: Cannot change status of a completed referral"),
        ("P2005", "D1004", "completed", NO_REFERRAL),
        # The missing referral is reported before the invalid status.
        ("P2005", "D1004", "done", NO_REFERRAL),
        ("Nobody", "D1004", "completed", "Error: Patient 'Nobody' not found"),
        ("P2005", "Dr. Nobody", "completed", "Error: Doctor 'Dr. Nobody' not found"),
    ],
)
def test_update_referral_status_errors(
    patient: str, doctor: str, new_status: str, message: str
) -> None:
    args = {
        "patient_identifier": patient,
        "referred_to_doctor_identifier": doctor,
        "new_status": new_status,
    }
    assert error("update_referral_status", args) == message


def test_cancelled_referral_cannot_change() -> None:
    args = {"patient_identifier": "P2003", "referred_to_doctor_identifier": "D1009"}
    ok_json("update_referral_status", dict(args, new_status="cancelled"))
    assert error("update_referral_status", dict(args, new_status="pending")) == (
        "Error: Cannot change status of a cancelled referral"
    )


def test_department_rows_are_real_foreign_keys() -> None:
    cardiology = Department.objects.get(name="Cardiology")
    assert sorted(cardiology.doctors.values_list("pk", flat=True)) == ["D1002", "D1005"]
    assert Doctor.objects.get(pk="D1002").department == cardiology
