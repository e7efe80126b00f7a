"""The deployment files under docker/: the compose stack's wiring, the proxy's WebSocket and
forwarding configuration, the image's stages. CI also validates the compose file with
``docker-compose config`` (scripts/compose-check.sh); this test covers the wiring that
``config`` cannot judge (which command, which health endpoint, which header)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_the_stack_has_every_service_and_the_vllm_servers_only_under_the_gpu_profile() -> None:
    services = _compose()["services"]
    assert {"proxy", "web", "worker", "beat", "migrate", "postgres", "redis"} <= set(services)
    gpu = {name for name, s in services.items() if "gpu" in s.get("profiles", [])}
    assert gpu == {"vllm-1", "vllm-2"}
    assert all("profiles" not in s for name, s in services.items() if name not in gpu)


def test_web_runs_the_draining_server_is_scaled_and_checked_on_its_readiness() -> None:
    web = _compose()["services"]["web"]
    assert web["command"][:3] == ["python", "manage.py", "serve"]
    assert "ports" not in web, "web replicas are reached through the proxy only"
    assert "replicas" in web["deploy"]
    assert "/readyz" in " ".join(web["healthcheck"]["test"])
    assert web["environment"]["PARLEY_CLIENT_ADDRESS_HEADER"] == "HTTP_X_FORWARDED_FOR"
    assert web["environment"]["DJANGO_SETTINGS_MODULE"] == "parley.platform.settings.production"
    assert web["environment"]["CELERY_TASK_ALWAYS_EAGER"] == "false"


def test_workers_and_beat_run_celery_and_wait_for_the_migrations() -> None:
    services = _compose()["services"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "parley.platform", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "parley.platform", "beat"]
    assert "migrate" in " ".join(services["migrate"]["command"])
    for name in ("web", "worker", "beat"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_every_required_variable_is_in_the_env_example() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = {
        line.split("=", 1)[0]
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used - example == set()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert {"DJANGO_SECRET_KEY", "POSTGRES_PASSWORD"} <= required


def _location(conf: str, path: str) -> str:
    match = re.search(rf"location {re.escape(path)} \{{(.*?)\n    \}}", conf, re.S)
    assert match, f"no location {path}"
    return match.group(1)


def test_the_proxy_upgrades_websockets_and_sets_the_forwarded_headers() -> None:
    conf = (DOCKER / "nginx" / "parley.conf").read_text()
    assert re.search(r"upstream parley_web \{[^}]*server web:8000 resolve", conf)
    assert "listen 443 ssl" in conf and "/etc/nginx/certs/tls.crt" in conf
    ws = _location(conf, "/ws/")
    assert "proxy_set_header Upgrade    $http_upgrade" in ws
    assert "proxy_set_header Connection $connection_upgrade" in ws
    assert "proxy_buffering off" in ws
    for block in (ws, _location(conf, "/")):
        # nginx drops outer proxy_set_header lines in a location that sets its own.
        assert "proxy_set_header X-Forwarded-For   $remote_addr" in block
        assert "proxy_set_header X-Forwarded-Proto https" in block
        assert "proxy_pass http://parley_web" in block
    proxy = _compose()["services"]["proxy"]
    assert "./nginx/parley.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]


def test_the_image_is_multi_stage_non_root_and_without_torch() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", dockerfile, re.M)
    assert stages == ["builder", "runtime"]
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "espeak-ng" in runtime and "collectstatic" in runtime
    assert "silero_vad.onnx" in runtime
    assert re.search(r"^USER parley$", runtime, re.M)
    assert "! pip show torch" in runtime
