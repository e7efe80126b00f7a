"""The OpenAPI schema (drf-spectacular), Swagger UI on local files, and the routing of one
URL to one APIView per method."""

from __future__ import annotations

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from tests.platform.api.conftest import user_with

pytestmark = pytest.mark.django_db

#: Every operation of docs/api.md: (path, method).
OPERATIONS = {
    ("/api/agents/", "get"),
    ("/api/agents/", "post"),
    ("/api/agents/{slug}/", "get"),
    ("/api/agents/{slug}/", "patch"),
    ("/api/agents/{slug}/publish", "post"),
    ("/api/agents/{slug}/prompts/", "get"),
    ("/api/agents/{slug}/prompts/", "post"),
    ("/api/agents/{slug}/prompts/{version}/rollback", "post"),
    ("/api/conversations/", "get"),
    ("/api/conversations/{conversation_id}/", "get"),
    ("/api/conversations/{conversation_id}/turns/", "get"),
    ("/api/conversations/{conversation_id}/tool-calls/", "get"),
    ("/api/conversations/{conversation_id}/transcript", "get"),
    ("/api/conversations/{conversation_id}/recording", "get"),
    ("/api/reports/", "get"),
    ("/api/reports/", "post"),
    ("/api/reports/{report_id}/", "get"),
    ("/api/exports/", "get"),
    ("/api/exports/", "post"),
    ("/api/exports/{export_id}/", "get"),
    ("/api/exports/{export_id}/download", "get"),
}


def test_spectacular_validate_fail_on_warn_passes(tmp_path) -> None:  # noqa: ANN001
    """``manage.py spectacular --validate --fail-on-warn`` (raises on any warning)."""
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    found = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert found == OPERATIONS


def test_schema_endpoint_serves_valid_openapi_with_bodies(analyst) -> None:  # noqa: ANN001
    response = analyst.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # OpenAPI 3 JSON Schema; raises when invalid
    assert schema["openapi"].startswith("3.")
    assert set(schema["components"]["securitySchemes"]) == {"tokenAuth", "cookieAuth"}
    paths, components = schema["paths"], schema["components"]["schemas"]

    create = paths["/api/agents/"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = components[ref.rsplit("/", 1)[1]]
    assert body["properties"]["endpointing_ms"]["maximum"] == 5000
    assert body["properties"]["endpointing_ms"]["minimum"] == 100
    assert {"slug", "name", "scenario", "model_pool", "prompt"} <= set(body["required"])
    assert "201" in create["responses"] and "400" in create["responses"]

    listed = paths["/api/conversations/"]["get"]
    params = {p["name"] for p in listed["parameters"]}
    assert {"agent", "scenario", "since", "until", "outcome", "tool_errors"} <= params
    assert {"ttfa_above_ms", "q", "limit", "offset"} <= params
    page = listed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert set(components[page.rsplit("/", 1)[1]]["properties"]) == {
        "count",
        "next",
        "previous",
        "results",
    }
    recording = paths["/api/conversations/{conversation_id}/recording"]["get"]
    assert "audio/wav" in recording["responses"]["200"]["content"]
    assert "409" in paths["/api/exports/{export_id}/download"]["get"]["responses"]


def test_swagger_ui_uses_local_files_only(hospital_agent) -> None:  # noqa: ANN001
    client = APIClient()
    client.force_login(user_with("reader", role="analyst"))  # the dashboard session
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    assert all(s.startswith("/static/") for s in sources), sources  # no CDN
    for src in sources:
        assert finders.find(src.removeprefix("/static/")), f"{src} is not a bundled file"
    assert '"/api/schema/"' in html
    assert '"validatorUrl": null' in html  # no call to swagger.io's online validator


def test_one_url_routes_each_method_to_its_view(admin, hospital_agent) -> None:  # noqa: ANN001
    head = admin.head("/api/agents/")
    assert head.status_code == 200 and head["Allow"] == "GET, POST, HEAD, OPTIONS"
    response = admin.delete("/api/agents/")
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST, HEAD, OPTIONS"
    assert admin.options("/api/agents/")["Allow"] == "GET, POST, HEAD, OPTIONS"
    assert APIClient().delete("/api/agents/").status_code == 401  # authentication first
