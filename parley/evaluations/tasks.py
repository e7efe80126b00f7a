"""The Celery job of an evaluation (thin: the work is in services)."""

from __future__ import annotations

from celery import shared_task

from parley.evaluations.services import evaluation_run

#: An evaluation may take long (64 tasks in voice mode: most of an hour); the global task
#: limits (30/60 s) are for tool calls.
EVALUATION_SOFT_LIMIT_S = 6 * 3600


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=EVALUATION_SOFT_LIMIT_S,
    time_limit=EVALUATION_SOFT_LIMIT_S + 60,
)
def evaluation_execute(self, evaluation_id: str) -> dict[str, object]:
    """Run an evaluation's pending runs (runs already finished are kept: a retried or
    re-delivered job resumes); returns the aggregated scores."""
    evaluation = evaluation_run(evaluation_id)
    return {"evaluation_id": str(evaluation.pk), "status": evaluation.status}
