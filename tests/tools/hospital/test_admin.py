"""The hospital models in the Django admin: lists, search and adding a record."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from parley.tools.hospital.models import HOSPITAL_MODELS, Department

pytestmark = pytest.mark.usefixtures("hospital_seeded")


@pytest.mark.parametrize("model", HOSPITAL_MODELS, ids=lambda m: m.__name__)
def test_changelist_lists_and_searches_every_model(admin_client: Client, model: type) -> None:
    url = reverse(f"admin:hospital_{model._meta.model_name}_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response.context["cl"].result_count == model.objects.count()
    first = model.objects.order_by("position").first()
    response = admin_client.get(url, {"q": first.pk})
    assert response.status_code == 200
    assert first in response.context["cl"].result_list
    change = reverse(f"admin:hospital_{model._meta.model_name}_change", args=[first.pk])
    assert admin_client.get(change).status_code == 200


def test_adding_a_department_without_position_appends_it(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:hospital_department_add"),
        {
            "department_id": "DEPT011",
            "name": "Oncology",
            "description": "Cancer care",
            "location": "Seventh Floor",
            "phone": "555-3011",
            "position": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Department.objects.get(pk="DEPT011").position == 10
