"""Django admin for the hospital scenario's records.

Every list is shown in ``position`` order, the order the tools iterate records in. A record
added here without a position is appended at the end (see ``HospitalRecord.save``).
"""

from __future__ import annotations

from django.contrib import admin

from parley.tools.hospital.models import (
    Appointment,
    Department,
    Doctor,
    LabResult,
    Medication,
    Patient,
    Referral,
)


class HospitalRecordAdmin(admin.ModelAdmin):
    """Shared settings: insertion order, and the position as an optional field."""

    ordering = ("position",)
    list_per_page = 50


@admin.register(Department)
class DepartmentAdmin(HospitalRecordAdmin):
    list_display = ("department_id", "name", "location", "phone", "position")
    search_fields = ("department_id", "name", "description", "location")


@admin.register(Doctor)
class DoctorAdmin(HospitalRecordAdmin):
    list_display = ("doctor_id", "name", "specialty", "department", "phone", "position")
    list_filter = ("department",)
    search_fields = ("doctor_id", "name", "specialty")
    autocomplete_fields = ("department",)


@admin.register(Patient)
class PatientAdmin(HospitalRecordAdmin):
    list_display = (
        "patient_id",
        "name",
        "email",
        "phone",
        "emergency_contact",
        "emergency_phone",
        "position",
    )
    search_fields = ("patient_id", "name", "email", "phone")


@admin.register(Appointment)
class AppointmentAdmin(HospitalRecordAdmin):
    list_display = (
        "appointment_id",
        "patient",
        "doctor",
        "appointment_date",
        "appointment_time",
        "department",
        "status",
        "position",
    )
    list_filter = ("status", "department")
    list_select_related = ("patient", "doctor")
    search_fields = ("appointment_id", "patient__name", "patient__patient_id", "doctor__name")
    autocomplete_fields = ("patient", "doctor", "department")


@admin.register(LabResult)
class LabResultAdmin(HospitalRecordAdmin):
    list_display = (
        "result_id",
        "patient",
        "test_name",
        "test_date",
        "status",
        "doctor",
        "position",
    )
    list_filter = ("status",)
    list_select_related = ("patient", "doctor")
    search_fields = ("result_id", "test_name", "patient__name", "patient__patient_id")
    date_hierarchy = "test_date"
    autocomplete_fields = ("patient", "doctor")


@admin.register(Medication)
class MedicationAdmin(HospitalRecordAdmin):
    list_display = (
        "medication_id",
        "patient",
        "medication_name",
        "dosage",
        "frequency",
        "doctor",
        "position",
    )
    list_select_related = ("patient", "doctor")
    search_fields = ("medication_id", "medication_name", "patient__name", "patient__patient_id")
    autocomplete_fields = ("patient", "doctor")


@admin.register(Referral)
class ReferralAdmin(HospitalRecordAdmin):
    list_display = (
        "referral_id",
        "patient",
        "referring_doctor",
        "referred_to_doctor",
        "referred_to_department",
        "referral_date",
        "status",
        "priority",
        "position",
    )
    list_filter = ("status", "priority", "referred_to_department")
    list_select_related = ("patient", "referring_doctor", "referred_to_doctor")
    search_fields = (
        "referral_id",
        "patient__name",
        "patient__patient_id",
        "referring_doctor__name",
        "referred_to_doctor__name",
    )
    date_hierarchy = "referral_date"
    autocomplete_fields = (
        "patient",
        "referring_doctor",
        "referred_to_doctor",
        "referring_department",
        "referred_to_department",
    )
