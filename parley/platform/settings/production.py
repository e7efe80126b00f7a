"""Production settings: PostgreSQL, Redis channel layer, Celery workers, real secrets."""

from __future__ import annotations

from parley.platform.env import env
from parley.platform.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Callers pick nothing: the agent's configured providers only (staff may still override).
PARLEY_PROVIDER_OVERRIDES = env.bool("PARLEY_PROVIDER_OVERRIDES", default=False)
# Real callers get real speech engines, whatever the environment says.
PARLEY_SIMULATED_SPEECH = False
