"""Settings shared by every environment. Concern-specific parts follow at the bottom."""

from __future__ import annotations

from pathlib import Path

from parley.platform.env import BASE_DIR, VAR_DIR, env

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="parley-dev-only-insecure-secret-key")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "daphne",  # runserver serves ASGI (HTTP + WebSocket) through Daphne
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served locally (no CDN)
    "channels",
    "django_celery_beat",
    "django_ratelimit",
    "auditlog",  # the audit log of admin changes (docs/security.md)
    "parley.platform.fleet",
    "parley.agents",
    "parley.tools",
    "parley.tools.hospital",
    "parley.tools.hr",
    "parley.tools.orders",
    "parley.conversations",
    "parley.evaluations",
    "parley.platform.dashboard",  # no models: `manage.py role` and its template filters
]

MIDDLEWARE = [
    # Probes answer whatever the Host header (orchestrators probe by pod address).
    "parley.platform.health.HealthProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in user becomes the actor of the audit rows a request writes; API requests
    # authenticated by token get theirs in parley.platform.api.permissions (DRF authenticates
    # in the view, after every middleware).
    "auditlog.middleware.AuditlogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "parley.platform.urls"
ASGI_APPLICATION = "parley.platform.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

#: Scenario data follows the active environment (live, or a sandbox): parley/tools/environments.py
DATABASE_ROUTERS = ["parley.tools.environments.ScenarioRouter"]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'parley.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        # A fresh clone has no var/ yet: SQLite creates the file, not its folder.
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the voice loop's writer and readers (admin, reports) work side by side.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL;"
    DATABASES["default"]["OPTIONS"]["timeout"] = 20
    # Take the write lock at BEGIN: a deferred transaction that reads and then writes fails
    # at once with "database is locked" when another thread writes, instead of waiting.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]

# Secret values (API keys, the secret key, database passwords) are redacted from every log
# record: a filter on every handler, and the record factory for handlers configured elsewhere
# (parley/platform/log_redaction.py, docs/security.md).
LOGGING_CONFIG = "parley.platform.log_redaction.logging_configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"redact_secrets": {"()": "parley.platform.log_redaction.SecretRedactingFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("PARLEY_LOG_LEVEL", default="INFO")},
    "loggers": {
        # Per-request INFO lines of the servers and HTTP clients drown the call's own log.
        name: {"level": "WARNING"}
        for name in ("django.channels.server", "daphne", "httpx", "httpx2", "celery.app.trace")
    },
}

REST_FRAMEWORK = {
    # API clients send "Authorization: Token <key>" (manage.py drf_create_token USER);
    # people signed in to the dashboard use their session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["parley.platform.api.permissions.ReadRole"],
    "DEFAULT_SCHEMA_CLASS": "parley.platform.api.schema.ApiSchema",
    "DEFAULT_PAGINATION_CLASS": "parley.platform.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "parley.platform.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parley API",
    "DESCRIPTION": "Agents, prompts, conversations, turns, tool calls, reports and exports.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Offline: never send the schema's address to swagger.io's online validator.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # One URL, one APIView per method (parley/platform/api/routing.py): show each one's schema.
    "PREPROCESSING_HOOKS": ["parley.platform.api.routing.method_views_expand"],
    # Several models have a "status": name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        "ConversationStatusEnum": "parley.conversations.models.Conversation.Status",
        "TurnStatusEnum": "parley.conversations.models.Turn.Status",
        "ToolCallStatusEnum": "parley.tools.models.ToolCall.Status",
        "JobStatusEnum": "parley.conversations.models.JobStatus",
    },
}

from parley.platform.settings.access import *  # noqa: E402,F403
from parley.platform.settings.audit import *  # noqa: E402,F403
from parley.platform.settings.celery import *  # noqa: E402,F403
from parley.platform.settings.channels import *  # noqa: E402,F403
from parley.platform.settings.voice import *  # noqa: E402,F403
