"""Celery: eager (tasks run in-process) unless a broker is configured."""

from __future__ import annotations

from celery.schedules import crontab

from parley.platform.env import env

_broker = env.str("CELERY_BROKER_URL", default="") or env.str("REDIS_URL", default="")
# With no broker the embedded default runs tasks in the calling process.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not _broker)
CELERY_BROKER_URL = _broker or "memory://localhost/"
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or _broker or "cache+memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
#: Seconds after which the Redis broker hands a delivered but unacknowledged task to another
#: worker (every task is acknowledged late, after it ran): how soon a SIGKILLed worker's tasks
#: come back (a prefork child that dies is requeued at once: CELERY_TASK_REJECT_ON_WORKER_LOST).
#: It must exceed the longest task (an evaluation run: 6 h + 60 s hard limit), or a task
#: still running is delivered a second time. docs/operations.md.
CELERY_VISIBILITY_TIMEOUT_S = env.int("CELERY_VISIBILITY_TIMEOUT_S", default=7 * 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_S,
    # Look for such tasks every few seconds (kombu scans every 10th sweep by default).
    "unacked_restore_interval": max(1, min(10, CELERY_VISIBILITY_TIMEOUT_S // 2)),
    "unacked_restore_throttle": 1,
}
CELERY_TASK_SOFT_TIME_LIMIT = 30
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# Periodic tasks: django-celery-beat's database scheduler (editable in the admin), seeded with
# this schedule. Run `celery -A parley.platform beat`.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
#: Seconds between LLM fleet health checks (docs/fleet.md).
FLEET_HEALTH_INTERVAL_S = env.float("FLEET_HEALTH_INTERVAL_S", default=10.0)
CELERY_BEAT_SCHEDULE = {
    "fleet-health-check": {
        "task": "parley.platform.fleet.tasks.fleet_health_check_all",
        "schedule": FLEET_HEALTH_INTERVAL_S,
    },
    # Recordings past their agent's retention days (docs/conversations.md).
    "recordings-expire": {
        "task": "parley.conversations.tasks.recordings_expire_run",
        "schedule": env.float("PARLEY_RECORDINGS_EXPIRE_INTERVAL_S", default=3600.0),
    },
    # Calls of a server process that died (no heartbeat): ended `aborted` (docs/operations.md).
    "conversations-recover": {
        "task": "parley.conversations.tasks.conversations_recover_run",
        "schedule": env.float("PARLEY_RECOVERY_INTERVAL_S", default=30.0),
    },
    # Yesterday's report of every agent that had calls (docs/reports.md), after midnight UTC.
    "agent-day-reports-nightly": {
        "task": "parley.conversations.tasks.agent_day_reports_nightly",
        "schedule": crontab(hour=0, minute=15),
    },
}
