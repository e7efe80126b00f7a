"""Test-only fault hooks for the process-fault tests (tests/platform/test_process_faults.py).

Installed by the test settings (``parley.platform.settings.test``) only when their environment
variable is set, never by the production or development settings.

``PARLEY_TEST_TOOL_DELAY_S``: a Celery worker started with it sleeps that many seconds inside
each tool's transaction, after the tool's writes (so a SIGKILL then leaves uncommitted
writes), having first created the file ``PARLEY_TEST_TOOL_MARK`` names (the test waits for it
to know the tool is running).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import Any

TOOL_DELAY_ENV = "PARLEY_TEST_TOOL_DELAY_S"
TOOL_MARK_ENV = "PARLEY_TEST_TOOL_MARK"

_installed = False


def tool_delay_install(**_signal: Any) -> None:
    """Wrap every registered tool with the delay (a Celery ``task_prerun`` receiver, so the
    registry is complete; installs once)."""
    global _installed
    if _installed:
        return
    _installed = True
    from parley.tools import registry

    delay_s = float(os.environ[TOOL_DELAY_ENV])
    mark = Path(os.environ[TOOL_MARK_ENV]) if os.environ.get(TOOL_MARK_ENV) else None
    for tools in registry._REGISTRY.values():
        for name, spec in list(tools.items()):
            tools[name] = dataclasses.replace(spec, func=_slowed(spec.func, delay_s, mark))


def _slowed(func: Any, delay_s: float, mark: Path | None) -> Any:
    @functools.wraps(func)
    def slowed(**kwargs: Any) -> str:
        result = func(**kwargs)
        if mark is not None:
            mark.write_text(func.__name__)
        time.sleep(delay_s)
        return result

    return slowed
