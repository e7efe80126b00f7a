"""Test settings. ``make test`` points DATABASE_URL and REDIS_URL at the real servers."""

from __future__ import annotations

import os as _os

from parley.platform.settings.base import *  # noqa: F403
from parley.platform.settings.base import VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Reports of test calls go to a throw-away folder, never to the developer's var/.
PARLEY_REPORTS_DIR = VAR_DIR / "test-reports"
# Tests run Celery tasks in-process unless a test starts a real worker explicitly.
CELERY_TASK_ALWAYS_EAGER = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: the voice loop writes from several threads, and
    # shared-cache SQLite fails with "table is locked" instead of waiting.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-parley.sqlite3")}  # noqa: F405

# Concurrent test runs share one Redis: keep their cache keys (rate-limit counters, spent call
# tokens) apart. Every test request comes from 127.0.0.1, so the per-address rate is high here;
# the rate-limit tests set their own.
if "KEY_PREFIX" in CACHES["default"]:  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] = f"parley-test-{_os.getpid()}"  # noqa: F405
PARLEY_CALL_TOKEN_RATE_PER_ADDRESS = "100000/m"
PARLEY_CALL_TOKEN_RATE_PER_KEY = "100000/m"
# Tests feed recordings faster than real time; the frame-rate tests set their own limit.
PARLEY_MAX_FRAMES_PER_S = 1_000_000.0
PARLEY_RECORDINGS_DIR = VAR_DIR / "test-recordings"
PARLEY_EXPORTS_DIR = VAR_DIR / "test-exports"

# Process-fault tests start Celery workers whose tools stall mid-transaction (test-only hook).
if _os.environ.get("PARLEY_TEST_TOOL_DELAY_S"):
    from celery.signals import task_prerun as _task_prerun

    from parley.testing.faults import tool_delay_install as _tool_delay_install

    _task_prerun.connect(_tool_delay_install, weak=False)
