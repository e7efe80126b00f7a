"""The one place that reads the environment (django-environ).

Every setting that comes from the environment is read here once, typed, with a development
default, so the embedded defaults (SQLite, in-memory channel layer, eager Celery, offline
engines, LLM simulator) work with no variables set.
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()
# A developer's optional .env file; production sets real environment variables.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

#: Where the embedded defaults keep their files (SQLite, reports, recordings, exports).
VAR_DIR = Path(env.str("PARLEY_VAR_DIR", default=str(BASE_DIR / "var")))
