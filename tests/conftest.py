"""Shared fixtures: paths to the bundled audio and scenario fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH = FIXTURES / "audio" / "speech"


@pytest.fixture(scope="session")
def speech_manifest() -> dict[str, dict]:
    return {e["file"]: e for e in json.loads((SPEECH / "manifest.json").read_text())}
