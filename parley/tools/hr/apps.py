"""The HR scenario app: Benchforce's HR-software domain as Django models and tools."""

from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig


class HRConfig(AppConfig):
    name = "parley.tools.hr"
    label = "hr"
    verbose_name = "HR software scenario"

    def ready(self) -> None:
        """Register the 16 HR tools of ``tools.json`` under the scenario ``hr``.

        Raises ``ValueError`` (from the registry) if ``tools.json`` and the implementations
        in :mod:`parley.tools.hr.tools` disagree on the tool names.
        """
        from parley.tools.hr.seed import hr_keyterms
        from parley.tools.hr.tools import HR_SIDE_EFFECTING, HR_TOOLS
        from parley.tools.registry import scenario_keyterms_register, scenario_tools_register

        scenario_tools_register(
            scenario="hr",
            schemas_path=Path(__file__).resolve().parent / "tools.json",
            functions=HR_TOOLS,
            side_effecting=HR_SIDE_EFFECTING,
        )
        scenario_keyterms_register(scenario="hr", func=hr_keyterms)
