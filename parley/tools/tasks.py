"""Celery tasks that run tools (their side effects happen here, in a worker or eagerly)."""

from __future__ import annotations

from celery import shared_task

from parley.tools.services import tool_call_execute


@shared_task(bind=True, acks_late=True, soft_time_limit=20, time_limit=30)
def tool_call_run(
    self, tool_call_id: int, scenario: str, allowed: list[str] | None = None
) -> dict[str, object]:
    """Run one recorded tool call (against the environment it was recorded for); returns
    ``{"ok", "content"}`` for the voice loop or the replay."""
    outcome = tool_call_execute(
        tool_call_id=tool_call_id,
        scenario=scenario,
        allowed=allowed,
        celery_task_id=self.request.id or "",
    )
    return {"ok": outcome.ok, "content": outcome.content}
