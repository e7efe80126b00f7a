"""The hospital scenario's domain: departments, doctors, patients and their clinical records.

The data come from Benchforce's ``hospital`` environment (Apache-2.0, Copyright (c) 2024
Salesforce, Inc.; see ``README.md`` and the licence file beside this module). Benchforce keeps
each collection as a JSON object keyed by record id and its tools iterate that object in
insertion order ("the first referral that matches", "the first scheduled appointment"). Two
things reproduce that here:

- every record keeps the seed's string id (``"P2001"``, ``"A3001"``) as its primary key, and
- every record has a ``position``: its index in the collection's insertion order (the seed
  file's key order, then creation order). Tools always ``order_by("position")``; they never
  rely on the database's default order.

:meth:`HospitalRecord.as_record` turns a row back into the seed-file record, with the same
keys in the same order (``JSON_FIELDS``), so
:func:`parley.tools.hospital.seed.hospital_state_export` reproduces ``data/*.json`` exactly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from django.db import models

from parley.tools.records import OrderedRecord


class HospitalRecord(OrderedRecord):
    """Common part of every hospital collection: insertion order and JSON round trip.

    ``JSON_FIELDS`` lists ``(json_key, model_attname)`` pairs in the seed file's key order;
    ``COLLECTION`` is the seed file stem (``data/<COLLECTION>.json``) and ``ID_KEY`` the JSON
    key holding the record id (equal to the record's key in the collection).
    """

    COLLECTION: ClassVar[str]
    ID_KEY: ClassVar[str]
    JSON_FIELDS: ClassVar[tuple[tuple[str, str], ...]]

    class Meta(OrderedRecord.Meta):
        abstract = True

    @classmethod
    def from_record(cls, record: dict[str, Any], *, position: int) -> HospitalRecord:
        """Build an unsaved row from a seed-file record.

        Raises ``ValueError`` if the record's keys are not exactly ``JSON_FIELDS`` or a date
        field is not an ISO ``YYYY-MM-DD`` string.
        """
        expected = [key for key, _ in cls.JSON_FIELDS]
        if sorted(record) != sorted(expected):
            missing = sorted(set(expected) - set(record))
            extra = sorted(set(record) - set(expected))
            raise ValueError(
                f"{cls.COLLECTION} record {record.get(cls.ID_KEY)!r}: "
                f"missing keys {missing}, unknown keys {extra}"
            )
        values: dict[str, Any] = {}
        for key, attname in cls.JSON_FIELDS:
            value = record[key]
            if isinstance(cls._meta.get_field(attname), models.DateField):
                value = dt.date.fromisoformat(value)
            values[attname] = value
        row = cls(position=position, **values)
        row._fold_lookup_fields()
        return row

    def as_record(self) -> dict[str, Any]:
        """The record exactly as in the seed file (same keys, same key order, dates as text)."""
        record: dict[str, Any] = {}
        for key, attname in self.JSON_FIELDS:
            value = getattr(self, attname)
            record[key] = value.isoformat() if isinstance(value, dt.date) else value
        return record


def name_fold(value: str) -> str:
    """The case-folding Benchforce applies to names before comparing them (``str.lower``).

    Done in Python, not with SQL ``LOWER()``, which differs between SQLite (ASCII only) and
    PostgreSQL (locale dependent).
    """
    return value.lower()


class Department(HospitalRecord):
    """A hospital department. Doctors, appointments and referrals refer to it by ``name``."""

    COLLECTION = "departments"
    ID_KEY = "department_id"
    JSON_FIELDS = (
        ("department_id", "department_id"),
        ("name", "name"),
        ("description", "description"),
        ("location", "location"),
        ("phone", "phone"),
    )

    department_id = models.CharField(primary_key=True, max_length=32)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    location = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=50, blank=True)

    def __str__(self) -> str:
        return self.name


class Doctor(HospitalRecord):
    """A doctor; ``name`` includes the title as stored in the seed (``"Dr. Sarah Johnson"``)."""

    COLLECTION = "doctors"
    ID_KEY = "doctor_id"
    JSON_FIELDS = (
        ("doctor_id", "doctor_id"),
        ("name", "name"),
        ("specialty", "specialty"),
        ("department", "department_id"),
        ("phone", "phone"),
    )

    doctor_id = models.CharField(primary_key=True, max_length=32)
    name = models.CharField(max_length=200)
    name_folded = models.CharField(
        max_length=200,
        editable=False,
        db_index=True,
        help_text="name.lower(), kept in step by save(): the key of the by-name lookup.",
    )
    specialty = models.CharField(max_length=200)
    department = models.ForeignKey(
        Department, to_field="name", on_delete=models.PROTECT, related_name="doctors"
    )
    phone = models.CharField(max_length=50, blank=True)

    def _fold_lookup_fields(self) -> None:
        self.name_folded = name_fold(self.name)

    def __str__(self) -> str:
        return f"{self.name} ({self.doctor_id})"


class Patient(HospitalRecord):
    """A patient with contact and emergency-contact details."""

    COLLECTION = "patients"
    ID_KEY = "patient_id"
    JSON_FIELDS = (
        ("patient_id", "patient_id"),
        ("name", "name"),
        ("email", "email"),
        ("phone", "phone"),
        ("emergency_contact", "emergency_contact"),
        ("emergency_phone", "emergency_phone"),
    )

    patient_id = models.CharField(primary_key=True, max_length=32)
    name = models.CharField(max_length=200)
    name_folded = models.CharField(
        max_length=200,
        editable=False,
        db_index=True,
        help_text="name.lower(), kept in step by save(): the key of the by-name lookup.",
    )
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    # Free text from the caller (update_emergency_contact stores it verbatim), hence TextField.
    emergency_contact = models.TextField(blank=True)
    emergency_phone = models.TextField(blank=True)

    def _fold_lookup_fields(self) -> None:
        self.name_folded = name_fold(self.name)

    def __str__(self) -> str:
        return f"{self.name} ({self.patient_id})"


class Appointment(HospitalRecord):
    """An appointment. Date and time are the caller's text (``"2024-01-15"``, ``"9:00 AM"``).

    They stay text because the reference stores and matches whatever string it was given.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        COMPLETED = "completed"
        CANCELLED = "cancelled"

    COLLECTION = "appointments"
    ID_KEY = "appointment_id"
    JSON_FIELDS = (
        ("appointment_id", "appointment_id"),
        ("patient_id", "patient_id"),
        ("doctor_id", "doctor_id"),
        ("appointment_time", "appointment_time"),
        ("appointment_date", "appointment_date"),
        ("department", "department_id"),
        ("status", "status"),
    )

    appointment_id = models.CharField(primary_key=True, max_length=32)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="appointments")
    doctor = models.ForeignKey(Doctor, on_delete=models.PROTECT, related_name="appointments")
    appointment_time = models.TextField()
    appointment_date = models.TextField()
    department = models.ForeignKey(
        Department, to_field="name", on_delete=models.PROTECT, related_name="appointments"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED)

    def __str__(self) -> str:
        return f"{self.appointment_id} {self.appointment_date} {self.appointment_time}"


class LabResult(HospitalRecord):
    """A laboratory test ordered for a patient."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        PENDING = "pending"
        COMPLETED = "completed"

    COLLECTION = "lab_results"
    ID_KEY = "result_id"
    # The seed file puts the id last in these records; the order is kept.
    JSON_FIELDS = (
        ("patient_id", "patient_id"),
        ("test_name", "test_name"),
        ("test_date", "test_date"),
        ("status", "status"),
        ("doctor_id", "doctor_id"),
        ("result_id", "result_id"),
    )

    result_id = models.CharField(primary_key=True, max_length=32)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="lab_results")
    test_name = models.CharField(max_length=200)
    test_date = models.DateField()
    status = models.CharField(max_length=20, choices=Status.choices)
    doctor = models.ForeignKey(Doctor, on_delete=models.PROTECT, related_name="lab_results")

    def __str__(self) -> str:
        return f"{self.result_id} {self.test_name}"


class Medication(HospitalRecord):
    """A medication a doctor prescribed to a patient."""

    COLLECTION = "medications"
    ID_KEY = "medication_id"
    # The seed file puts the id last in these records; the order is kept.
    JSON_FIELDS = (
        ("patient_id", "patient_id"),
        ("medication_name", "medication_name"),
        ("dosage", "dosage"),
        ("frequency", "frequency"),
        ("doctor_id", "doctor_id"),
        ("medication_id", "medication_id"),
    )

    medication_id = models.CharField(primary_key=True, max_length=32)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="medications")
    medication_name = models.CharField(max_length=200)
    dosage = models.CharField(max_length=100)
    frequency = models.CharField(max_length=200)
    doctor = models.ForeignKey(Doctor, on_delete=models.PROTECT, related_name="medications")

    def __str__(self) -> str:
        return f"{self.medication_id} {self.medication_name}"


class Referral(HospitalRecord):
    """A referral of a patient from one doctor to a specialist in another department."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SCHEDULED = "scheduled"
        COMPLETED = "completed"
        CANCELLED = "cancelled"

    class Priority(models.TextChoices):
        URGENT = "urgent"
        ROUTINE = "routine"
        STAT = "stat"

    COLLECTION = "referrals"
    ID_KEY = "referral_id"
    JSON_FIELDS = (
        ("referral_id", "referral_id"),
        ("patient_id", "patient_id"),
        ("referring_doctor_id", "referring_doctor_id"),
        ("referred_to_doctor_id", "referred_to_doctor_id"),
        ("referring_department", "referring_department_id"),
        ("referred_to_department", "referred_to_department_id"),
        ("referral_date", "referral_date"),
        ("status", "status"),
        ("priority", "priority"),
    )

    referral_id = models.CharField(primary_key=True, max_length=32)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="referrals")
    referring_doctor = models.ForeignKey(
        Doctor, on_delete=models.PROTECT, related_name="referrals_made"
    )
    referred_to_doctor = models.ForeignKey(
        Doctor, on_delete=models.PROTECT, related_name="referrals_received"
    )
    referring_department = models.ForeignKey(
        Department, to_field="name", on_delete=models.PROTECT, related_name="referrals_out"
    )
    referred_to_department = models.ForeignKey(
        Department, to_field="name", on_delete=models.PROTECT, related_name="referrals_in"
    )
    referral_date = models.DateField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    priority = models.CharField(max_length=20, choices=Priority.choices, default=Priority.ROUTINE)

    def __str__(self) -> str:
        return f"{self.referral_id} {self.patient_id} → {self.referred_to_doctor_id}"


#: Every collection in the seed-file order of ``data/*.json`` stems (sorted by name).
HOSPITAL_MODELS: tuple[type[HospitalRecord], ...] = (
    Appointment,
    Department,
    Doctor,
    LabResult,
    Medication,
    Patient,
    Referral,
)
