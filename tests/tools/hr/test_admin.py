"""The HR models in the Django admin: lists, search and adding a record."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from parley.tools.hr.models import HR_MODELS, Organization

pytestmark = pytest.mark.usefixtures("hr_seeded")


@pytest.mark.parametrize("model", HR_MODELS, ids=lambda m: m.__name__)
def test_changelist_lists_and_searches_every_model(admin_client: Client, model: type) -> None:
    url = reverse(f"admin:hr_{model._meta.model_name}_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response.context["cl"].result_count == model.objects.count()
    first = model.objects.order_by("position").first()
    assert list(response.context["cl"].result_list)[0] == first  # insertion order
    response = admin_client.get(url, {"q": first.pk})
    assert response.status_code == 200
    assert first in response.context["cl"].result_list
    change = reverse(f"admin:hr_{model._meta.model_name}_change", args=[first.pk])
    assert admin_client.get(change).status_code == 200


def test_adding_an_organization_without_position_appends_it(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:hr_organization_add"),
        {
            "id": "ORG-000501",
            "name": "Parley Test Works",
            "primary_email": "admin@parleytestworks.com",
            "secondary_email": "",
            "billing_address": "1 Test Street, Boston, US-EAST",
            "payment_methods": '["ach"]',
            "subscription_id": "SUB-000501",
            "industry": "technology",
            "size_category": "small",
            "offices": '[{"region": "us-east", "city": "Boston", "is_headquarters": true}]',
            "primary_region": "us-east",
            "language": "en-US",
            "created_date_0": "2024-01-02",
            "created_date_1": "03:04:05",
            "status": "active",
            "position": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    organization = Organization.objects.get(pk="ORG-000501")
    assert organization.position == 500
    record = organization.as_record()
    assert record["secondary_email"] is None  # an empty field is the seed's null
    assert record["created_date"] == "2024-01-02T03:04:05Z"
    assert record["offices"] == [{"region": "us-east", "city": "Boston", "is_headquarters": True}]
