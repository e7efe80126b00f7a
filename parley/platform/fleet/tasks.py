"""Celery tasks of the fleet (thin: the work is in services)."""

from __future__ import annotations

from celery import shared_task

from parley.platform.fleet.services import fleet_health_check


@shared_task(soft_time_limit=60, time_limit=90, ignore_result=True)
def fleet_health_check_all() -> dict[str, str]:
    """Active health check of every enabled LLM server (scheduled by Celery beat)."""
    return fleet_health_check()
