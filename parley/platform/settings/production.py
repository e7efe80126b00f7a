"""Production settings: PostgreSQL, Redis channel layer, Celery workers, real secrets, HTTPS.

``manage.py check --deploy --fail-level WARNING`` passes with these settings and the required
variables set (tests/platform/test_security_settings.py; docs/security.md):
``DJANGO_SECRET_KEY`` (50+ random characters), ``DATABASE_URL``, ``DJANGO_ALLOWED_HOSTS``;
``DJANGO_CSRF_TRUSTED_ORIGINS`` when the dashboard is reached through another origin (a proxy).
Parley expects to sit behind a TLS-terminating proxy that sets ``X-Forwarded-Proto``.
"""

from __future__ import annotations

from parley.platform.env import env
from parley.platform.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
#: No default: a production server answers only to the host names it is told.
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
#: Origins (``https://parley.example.com``) whose unsafe requests pass the CSRF origin check
#: besides the request's own host (needed when a proxy serves the dashboard on another name).
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS: the proxy terminates TLS and says so in X-Forwarded-Proto; plain HTTP is redirected,
# except the health probes an orchestrator sends to the pod over plain HTTP inside the cluster.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
#: HSTS: browsers use HTTPS only for this long (s). One year is what the browsers' preload
#: lists ask for (hstspreload.org); start lower (e.g. 3600) while trying HTTPS out.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
#: Consent to the browsers' HSTS preload list (adding the domain to it is a separate, manual
#: submission at hstspreload.org).
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
#: The dashboard and the admin are never framed (the widget is a script tag, not a frame).
X_FRAME_OPTIONS = "DENY"

# Cookies: HTTPS only, out of JavaScript's reach, not sent on cross-site subrequests. The
# dashboard's forms and the widget's test-call page put the CSRF token in the page, so the
# CSRF cookie needs no JavaScript access either. The caller widget on other origins uses no
# cookie at all (publishable key + Origin → call token; docs/widget.md).
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
#: A dashboard session ends after this long (s; Django's default is two weeks).
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=12 * 3600)

# Callers pick nothing: the agent's configured providers only (staff may still override).
PARLEY_PROVIDER_OVERRIDES = env.bool("PARLEY_PROVIDER_OVERRIDES", default=False)
# Real callers get real speech engines, whatever the environment says.
PARLEY_SIMULATED_SPEECH = False
