"""Development settings: the embedded defaults plus DEBUG."""

from __future__ import annotations

from parley.platform.env import env
from parley.platform.settings.base import *  # noqa: F403

DEBUG = env.bool("DJANGO_DEBUG", default=True)
