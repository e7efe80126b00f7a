"""The Django project: settings, ASGI entry point, URLs, Celery app and cross-cutting apps."""

from parley.platform.celery import app as celery_app

__all__ = ["celery_app"]
