"""The 12 hospital tools of ``tools.json``, implemented over the hospital models.

Each function is named after its tool, takes the tool's arguments as keyword arguments and
returns the text the LLM reads: ``json.dumps`` output (Python's default separators and
``ensure_ascii``) with the reference's key order, or an ``"Error: ..."`` message. Results,
error texts and state changes follow Benchforce's reference tools
(``src/environments/hospital/functions/*.py``, commit ``15afc3b``; Apache-2.0, Copyright (c)
2024 Salesforce, Inc.), as recorded in ``tests/fixtures/scenarios/hospital/expected.json``.
Behaviour worth knowing when reading results:

- a patient is found by exact id, else by case-insensitive full name; a doctor by exact id,
  else by case-insensitive name with or without the ``"Dr. "`` title. When several records
  match, the first in insertion order (``position``) wins;
- "first match" searches (the appointment to cancel, the referral to update, the scheduled
  appointment shown) use insertion order; lab results and referrals are listed newest first
  by date, ties in insertion order (Python's stable ``sort(reverse=True)``);
- new ids continue the collection's scheme: ``A`` / ``R`` + (highest number + 1);
- ``get_appointment`` always returns ``"doctor_name": null`` (the reference reads a field
  appointments do not have), and ``create_referral``'s department error says ``"Dr. Dr. ..."``
  (the reference prefixes the stored name, which already has the title). Both are kept so
  results match the reference exactly.

Argument validation (types, required arguments) happens before these functions run, in
:func:`parley.tools.registry.tool_run`; the functions assume ``str`` arguments.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import Q
from django.utils import timezone

from parley.tools.environments import active_alias, environment_atomic
from parley.tools.hospital.models import (
    Appointment,
    Doctor,
    HospitalRecord,
    LabResult,
    Medication,
    Patient,
    Referral,
    name_fold,
)

_DOCTOR_TITLE = "dr. "
_REFERRAL_TYPES = ("all", "outgoing", "incoming")
_REFERRAL_PRIORITIES = ("urgent", "routine", "stat")
_REFERRAL_STATUSES = ("pending", "scheduled", "completed", "cancelled")


def today() -> dt.date:
    """The date ``create_referral`` stamps on a new referral (``referral_date``).

    The reference uses the server's ``datetime.now()``; here it is today's date in Django's
    current time zone (``TIME_ZONE``). Tests patch this function to freeze the clock
    (``expected.json`` froze it at 2025-01-01).
    """
    return timezone.localdate()


def _dumps(value: Any) -> str:
    # Python's defaults on purpose: the reference results are plain json.dumps output.
    return json.dumps(value)


def _db_can_hold(value: str) -> bool:
    """Whether ``value`` could be stored in a text column (PostgreSQL rejects NUL characters).

    A lookup by a value the database cannot hold cannot match, and PostgreSQL would raise on
    the query instead of returning nothing.
    """
    return "\x00" not in value or connections[active_alias()].vendor != "postgresql"


def _patient_resolve(identifier: str) -> Patient | None:
    """The patient with id ``identifier``, else the first whose name matches ignoring case."""
    if not _db_can_hold(identifier):
        return None
    patient = Patient.objects.filter(pk=identifier).first()
    if patient is not None:
        return patient
    return Patient.objects.filter(name_folded=name_fold(identifier)).order_by("position").first()


def _doctor_resolve(identifier: str) -> Doctor | None:
    """The doctor with id ``identifier``, else the first whose name matches.

    Names match ignoring case, and with or without the ``"Dr. "`` title on either side:
    stored ``"Dr. Sarah Johnson"`` matches ``"dr. sarah johnson"`` and ``"Sarah Johnson"``.
    """
    if not _db_can_hold(identifier):
        return None
    doctor = Doctor.objects.filter(pk=identifier).first()
    if doctor is not None:
        return doctor
    folded = name_fold(identifier)
    candidates = {folded, _DOCTOR_TITLE + folded}
    if folded.startswith(_DOCTOR_TITLE):
        candidates.add(folded[len(_DOCTOR_TITLE) :])
    return Doctor.objects.filter(name_folded__in=candidates).order_by("position").first()


def _id_next(*, model: type[HospitalRecord], prefix: str, first: str) -> str:
    """The next id in a collection's scheme: ``prefix`` + (highest numeric suffix + 1).

    Ids that are not ``prefix`` followed by digits are ignored; ``first`` when there is none.
    """
    numbers = [
        int(pk[len(prefix) :])
        for pk in model.objects.values_list("pk", flat=True)
        if pk.startswith(prefix) and pk[len(prefix) :].isdecimal()
    ]
    return f"{prefix}{max(numbers) + 1}" if numbers else first


def _patient_not_found(identifier: str) -> str:
    return f"Error: Patient '{identifier}' not found"


def _doctor_not_found(identifier: str) -> str:
    return f"Error: Doctor '{identifier}' not found"


def get_patient_info(*, patient_identifier: str) -> str:
    """The patient's record (id, name, email, phone, emergency contact and phone).

    Returns ``"Error: Patient '<identifier>' not found"`` if no patient matches.
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    return _dumps(patient.as_record())


def get_doctor_info(*, doctor_identifier: str) -> str:
    """The doctor's record (id, name, specialty, department, phone).

    Returns ``"Error: Doctor '<identifier>' not found"`` if no doctor matches.
    """
    doctor = _doctor_resolve(doctor_identifier)
    if doctor is None:
        return _doctor_not_found(doctor_identifier)
    return _dumps(doctor.as_record())


def get_appointment(*, patient_identifier: str) -> str:
    """The patient's first scheduled appointment (in insertion order).

    ``{"appointment_id", "patient_id", "patient_name", "doctor_id", "doctor_name": null}``.
    Errors: patient not found; ``"Error: No appointment found for patient '<identifier>'"``.
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    appointment = (
        Appointment.objects.filter(patient=patient, status=Appointment.Status.SCHEDULED)
        .order_by("position")
        .first()
    )
    if appointment is None:
        return f"Error: No appointment found for patient '{patient_identifier}'"
    return _dumps(
        {
            "appointment_id": appointment.appointment_id,
            "patient_id": patient.patient_id,
            "patient_name": patient.name,
            "doctor_id": appointment.doctor_id,
            # The reference reads appointment["doctor_name"], which no appointment has.
            "doctor_name": None,
        }
    )


def get_lab_results(*, patient_identifier: str) -> str:
    """The patient's lab results, newest ``test_date`` first (ties in insertion order).

    ``{"patient_id", "patient_name", "lab_results": [record, ...]}``. Errors: patient not
    found; ``"Error: No lab results found for patient '<name>'"``.
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    results = [
        row.as_record()
        for row in LabResult.objects.filter(patient=patient).order_by("-test_date", "position")
    ]
    if not results:
        return f"Error: No lab results found for patient '{patient.name}'"
    return _dumps(
        {"patient_id": patient.patient_id, "patient_name": patient.name, "lab_results": results}
    )


def get_patient_medications(*, patient_identifier: str) -> str:
    """The patient's medications in insertion order.

    ``{"patient_id", "patient_name", "medications": [record, ...]}``. Errors: patient not
    found; ``"Error: No medications found for patient '<name>'"``.
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    medications = [
        row.as_record() for row in Medication.objects.filter(patient=patient).order_by("position")
    ]
    if not medications:
        return f"Error: No medications found for patient '{patient.name}'"
    return _dumps(
        {
            "patient_id": patient.patient_id,
            "patient_name": patient.name,
            "medications": medications,
        }
    )


def get_patient_referrals(*, patient_identifier: str) -> str:
    """The patient's referrals, newest ``referral_date`` first (ties in insertion order).

    ``{"patient_id", "patient_name", "total_referrals", "referrals"}``, or, when there are
    none, ``{"message": "No referrals found for patient '<name>'", "patient_id",
    "patient_name", "referrals": []}`` (not an error). Errors: patient not found.
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    referrals = [
        row.as_record()
        for row in Referral.objects.filter(patient=patient).order_by("-referral_date", "position")
    ]
    if not referrals:
        return _dumps(
            {
                "message": f"No referrals found for patient '{patient.name}'",
                "patient_id": patient.patient_id,
                "patient_name": patient.name,
                "referrals": [],
            }
        )
    return _dumps(
        {
            "patient_id": patient.patient_id,
            "patient_name": patient.name,
            "total_referrals": len(referrals),
            "referrals": referrals,
        }
    )


def get_doctor_referrals(*, doctor_identifier: str, referral_type: str = "all") -> str:
    """Referrals made by (``outgoing``), made to (``incoming``) or involving (``all``) a doctor.

    Newest ``referral_date`` first (ties in insertion order), with a count per status in the
    order statuses first appear in that list: ``{"doctor_id", "doctor_name",
    "referral_type", "total_referrals", "status_summary", "referrals"}``; when there are none,
    ``{"message": "No <type> referrals found for <name>", "doctor_id", "doctor_name",
    "referral_type", "referrals": []}`` (not an error). Errors: doctor not found;
    ``"Error: Referral type must be one of: all, outgoing, incoming"``.
    """
    doctor = _doctor_resolve(doctor_identifier)
    if doctor is None:
        return _doctor_not_found(doctor_identifier)
    if referral_type not in _REFERRAL_TYPES:
        return f"Error: Referral type must be one of: {', '.join(_REFERRAL_TYPES)}"
    if referral_type == "outgoing":
        involving = Q(referring_doctor=doctor)
    elif referral_type == "incoming":
        involving = Q(referred_to_doctor=doctor)
    else:
        involving = Q(referring_doctor=doctor) | Q(referred_to_doctor=doctor)
    referrals = [
        row.as_record()
        for row in Referral.objects.filter(involving).order_by("-referral_date", "position")
    ]
    if not referrals:
        return _dumps(
            {
                "message": f"No {referral_type} referrals found for {doctor.name}",
                "doctor_id": doctor.doctor_id,
                "doctor_name": doctor.name,
                "referral_type": referral_type,
                "referrals": [],
            }
        )
    status_summary: dict[str, int] = {}
    for referral in referrals:
        status_summary[referral["status"]] = status_summary.get(referral["status"], 0) + 1
    return _dumps(
        {
            "doctor_id": doctor.doctor_id,
            "doctor_name": doctor.name,
            "referral_type": referral_type,
            "total_referrals": len(referrals),
            "status_summary": status_summary,
            "referrals": referrals,
        }
    )


@environment_atomic
def schedule_appointment(
    *,
    patient_identifier: str,
    doctor_identifier: str,
    appointment_time: str,
    appointment_date: str,
    department: str,
) -> str:
    """Create a scheduled appointment with the next ``A`` id; writes one Appointment row.

    ``{"message": "Appointment scheduled successfully", "appointment": record}``. Errors:
    patient or doctor not found; ``"Error: Doctor <name> is not in <department> department"``
    (the department must be the doctor's, exact text); ``"Error: This appointment is already
    scheduled"`` (same patient, doctor, date, time and department, still scheduled).
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    doctor = _doctor_resolve(doctor_identifier)
    if doctor is None:
        return _doctor_not_found(doctor_identifier)
    if doctor.department_id != department:
        return f"Error: Doctor {doctor.name} is not in {department} department"
    if (
        _db_can_hold(appointment_date)
        and _db_can_hold(appointment_time)
        and Appointment.objects.filter(
            patient=patient,
            doctor=doctor,
            appointment_date=appointment_date,
            appointment_time=appointment_time,
            department_id=department,
            status=Appointment.Status.SCHEDULED,
        ).exists()
    ):
        return "Error: This appointment is already scheduled"
    appointment = Appointment(
        appointment_id=_id_next(model=Appointment, prefix="A", first="A3001"),
        patient=patient,
        doctor=doctor,
        appointment_time=appointment_time,
        appointment_date=appointment_date,
        department_id=department,
        status="scheduled",
    )
    appointment.save(force_insert=True)
    return _dumps(
        {"message": "Appointment scheduled successfully", "appointment": appointment.as_record()}
    )


@environment_atomic
def cancel_appointment(
    *,
    patient_identifier: str,
    doctor_identifier: str,
    appointment_date: str,
    appointment_time: str,
) -> str:
    """Cancel the first appointment (insertion order) with that patient, doctor, date and time.

    Sets its ``status`` to ``cancelled`` and returns ``{"message", "appointment_id",
    "patient_id", "patient_name", "doctor_id", "doctor_name", "appointment_date",
    "appointment_time", "status"}``. Errors: patient or doctor not found; ``"Error:
    Appointment not found for <patient> with <doctor> on <date> at <time>"``; ``"Error:
    Appointment is already cancelled"``; ``"Error: Cannot cancel a completed appointment"``.
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    doctor = _doctor_resolve(doctor_identifier)
    if doctor is None:
        return _doctor_not_found(doctor_identifier)
    appointment = None
    if _db_can_hold(appointment_date) and _db_can_hold(appointment_time):
        appointment = (
            Appointment.objects.select_for_update()
            .filter(
                patient=patient,
                doctor=doctor,
                appointment_date=appointment_date,
                appointment_time=appointment_time,
            )
            .order_by("position")
            .first()
        )
    if appointment is None:
        return (
            f"Error: Appointment not found for {patient.name} with {doctor.name} "
            f"on {appointment_date} at {appointment_time}"
        )
    if appointment.status == Appointment.Status.CANCELLED:
        return "Error: Appointment is already cancelled"
    if appointment.status == Appointment.Status.COMPLETED:
        return "Error: Cannot cancel a completed appointment"
    appointment.status = "cancelled"
    appointment.save(update_fields=["status"])
    return _dumps(
        {
            "message": "Appointment cancelled successfully",
            "appointment_id": appointment.appointment_id,
            "patient_id": patient.patient_id,
            "patient_name": patient.name,
            "doctor_id": doctor.doctor_id,
            "doctor_name": doctor.name,
            "appointment_date": appointment_date,
            "appointment_time": appointment_time,
            "status": "cancelled",
        }
    )


@environment_atomic
def update_emergency_contact(
    *, patient_identifier: str, contact_name: str, contact_phone: str
) -> str:
    """Replace the patient's emergency contact name and phone (stored verbatim).

    ``{"message": "Emergency contact updated successfully", "patient_id", "patient_name",
    "emergency_contact", "emergency_phone"}``; succeeds even when nothing changes. Errors:
    patient not found.
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    patient.emergency_contact = contact_name
    patient.emergency_phone = contact_phone
    patient.save(update_fields=["emergency_contact", "emergency_phone"])
    return _dumps(
        {
            "message": "Emergency contact updated successfully",
            "patient_id": patient.patient_id,
            "patient_name": patient.name,
            "emergency_contact": contact_name,
            "emergency_phone": contact_phone,
        }
    )


@environment_atomic
def create_referral(
    *,
    patient_identifier: str,
    referring_doctor_identifier: str,
    referred_to_doctor_identifier: str,
    referred_to_department: str,
    priority: str = "routine",
) -> str:
    """Create a ``pending`` referral dated :func:`today` with the next ``R`` id.

    The referring department is the referring doctor's. Returns ``{"message": "Referral
    created successfully", "referral": record}``. Errors: patient not found; ``"Error:
    Referring doctor '<identifier>' not found"``; ``"Error: Referred-to doctor '<identifier>'
    not found"``; ``"Error: Dr. <name> is not in <department> department"`` (the referred-to
    doctor must be in ``referred_to_department``; ``<name>`` already starts with "Dr.");
    ``"Error: Priority must be one of: urgent, routine, stat"``.
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    referring = _doctor_resolve(referring_doctor_identifier)
    if referring is None:
        return f"Error: Referring doctor '{referring_doctor_identifier}' not found"
    referred_to = _doctor_resolve(referred_to_doctor_identifier)
    if referred_to is None:
        return f"Error: Referred-to doctor '{referred_to_doctor_identifier}' not found"
    if referred_to.department_id != referred_to_department:
        return f"Error: Dr. {referred_to.name} is not in {referred_to_department} department"
    if priority not in _REFERRAL_PRIORITIES:
        return f"Error: Priority must be one of: {', '.join(_REFERRAL_PRIORITIES)}"
    referral = Referral(
        referral_id=_id_next(model=Referral, prefix="R", first="R6001"),
        patient=patient,
        referring_doctor=referring,
        referred_to_doctor=referred_to,
        referring_department_id=referring.department_id,
        referred_to_department_id=referred_to_department,
        referral_date=today(),
        status="pending",
        priority=priority,
    )
    referral.save(force_insert=True)
    return _dumps({"message": "Referral created successfully", "referral": referral.as_record()})


@environment_atomic
def update_referral_status(
    *, patient_identifier: str, referred_to_doctor_identifier: str, new_status: str
) -> str:
    """Set the status of the patient's first referral (insertion order) to that doctor.

    Returns ``{"message": "Referral status updated successfully from '<old>' to '<new>'",
    "referral_id", "patient_name", "referred_to_doctor_name", "old_status", "new_status",
    "referral": record}``. Errors, checked in this order: patient not found; doctor not found;
    ``"Error: No referral found for patient '<name>' to doctor '<name>'"``; ``"Error: Status
    must be one of: pending, scheduled, completed, cancelled"``; ``"Error: Referral is already
    <status>"``; ``"Error: Cannot change status of a completed referral"`` (and of a
    ``cancelled`` one).
    """
    patient = _patient_resolve(patient_identifier)
    if patient is None:
        return _patient_not_found(patient_identifier)
    doctor = _doctor_resolve(referred_to_doctor_identifier)
    if doctor is None:
        return _doctor_not_found(referred_to_doctor_identifier)
    referral = (
        Referral.objects.select_for_update()
        .filter(patient=patient, referred_to_doctor=doctor)
        .order_by("position")
        .first()
    )
    if referral is None:
        return f"Error: No referral found for patient '{patient.name}' to doctor '{doctor.name}'"
    if new_status not in _REFERRAL_STATUSES:
        return f"Error: Status must be one of: {', '.join(_REFERRAL_STATUSES)}"
    old_status = referral.status
    if old_status == new_status:
        return f"Error: Referral is already {new_status}"
    if old_status in (Referral.Status.COMPLETED, Referral.Status.CANCELLED):
        return f"Error: Cannot change status of a {old_status} referral"
    referral.status = new_status
    referral.save(update_fields=["status"])
    message = f"Referral status updated successfully from '{old_status}' to '{new_status}'"
    return _dumps(
        {
            "message": message,
            "referral_id": referral.referral_id,
            "patient_name": patient.name,
            "referred_to_doctor_name": doctor.name,
            "old_status": old_status,
            "new_status": new_status,
            "referral": referral.as_record(),
        }
    )


#: Tool name → implementation, for :func:`parley.tools.registry.scenario_tools_register`.
HOSPITAL_TOOLS: dict[str, Callable[..., str]] = {
    "cancel_appointment": cancel_appointment,
    "create_referral": create_referral,
    "get_appointment": get_appointment,
    "get_doctor_info": get_doctor_info,
    "get_doctor_referrals": get_doctor_referrals,
    "get_lab_results": get_lab_results,
    "get_patient_info": get_patient_info,
    "get_patient_medications": get_patient_medications,
    "get_patient_referrals": get_patient_referrals,
    "schedule_appointment": schedule_appointment,
    "update_emergency_contact": update_emergency_contact,
    "update_referral_status": update_referral_status,
}

#: The tools that write to the database.
HOSPITAL_SIDE_EFFECTING: frozenset[str] = frozenset(
    {
        "cancel_appointment",
        "create_referral",
        "schedule_appointment",
        "update_emergency_contact",
        "update_referral_status",
    }
)
