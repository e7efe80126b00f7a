"""Development settings: the embedded defaults plus DEBUG."""

from __future__ import annotations

from parley.platform.settings.base import *  # noqa: F403
from parley.platform.env import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
