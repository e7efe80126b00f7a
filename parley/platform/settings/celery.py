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
# Redis restarts (docs/operations.md#redis-restarts). A restart takes a second or two: a task
# published meanwhile retries for about 2.5 s (0, 0.5, 1, 1 s apart; Celery's default gives up
# after 0.6 s) before the error reaches the caller.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 4,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
# The result backend reconnects 3 times, 1 s apart (Celery's default: 20 times, so a
# ``delay()`` with Redis down hung 19 s before it failed, and a call waiting for a tool result
# with it). A worker that cannot store a result is not a loss: a tool's outcome is its
# ToolCall row (parley/tools/services.py), which the voice loop reads when the result is lost.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 1, "interval_max": 1}
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
