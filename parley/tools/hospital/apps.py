"""The hospital scenario app: Benchforce's hospital domain as Django models and tools."""

from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig


class HospitalConfig(AppConfig):
    name = "parley.tools.hospital"
    label = "hospital"
    verbose_name = "Hospital scenario"

    def ready(self) -> None:
        """Register the 12 hospital tools of ``tools.json`` under the scenario ``hospital``.

        Raises ``ValueError`` (from the registry) if ``tools.json`` and the implementations
        in :mod:`parley.tools.hospital.tools` disagree on the tool names.
        """
        from parley.tools.hospital.seed import hospital_keyterms
        from parley.tools.hospital.tools import HOSPITAL_SIDE_EFFECTING, HOSPITAL_TOOLS
        from parley.tools.registry import scenario_keyterms_register, scenario_tools_register

        scenario_tools_register(
            scenario="hospital",
            schemas_path=Path(__file__).resolve().parent / "tools.json",
            functions=HOSPITAL_TOOLS,
            side_effecting=HOSPITAL_SIDE_EFFECTING,
        )
        scenario_keyterms_register(scenario="hospital", func=hospital_keyterms)
