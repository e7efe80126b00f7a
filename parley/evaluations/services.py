"""Evaluation runs: create them, run them (a Celery job or ``manage.py evaluate``), score them.

A run of one task: a fresh sandbox of the agent's scenario; a simulated caller
(:mod:`parley.evaluations.callers`) that knows only the task's instructions; the call itself
— in **text** mode an in-process :class:`~parley.agents.text_call.TextCall` (caller lines
straight into the agent loop), in **voice** mode a
:class:`~parley.evaluations.voice_call.VoiceCall` over the real caller WebSocket; then the
scores (:mod:`parley.evaluations.scoring`) from what was logged: the conversation's
``ToolCall`` rows against the task's expected actions, the sandbox's final state against a
replay of those actions, turns, tokens and latency from the ``Turn`` rows and events. The
sandbox is dropped after each run. Runs already finished are skipped when an evaluation is
run again (a retried job resumes).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from parley.agents.models import Agent
from parley.agents.text_call import TextCall
from parley.conversations.models import CallEvent, Turn
from parley.conversations.reports import atomic_write_text
from parley.evaluations.callers import Caller, LLMCaller, ScriptedCaller
from parley.evaluations.models import Evaluation, EvaluationRun
from parley.evaluations.scoring import (
    RunScore,
    action_match,
    scores_aggregate,
    spread,
    state_match,
)
from parley.evaluations.voice_call import VoiceCall
from parley.platform.errors import ApplicationError
from parley.platform.fleet.models import ModelPool
from parley.platform.log_redaction import secret_env_read
from parley.tools.environments import (
    DOMAIN_APPS,
    environment_call_token,
    environment_sandbox_create,
    environment_sandbox_drop,
)
from parley.tools.models import ToolCall
from parley.tools.replay import scenario_state_export, task_reference_state, tasks_validate

logger = logging.getLogger(__name__)

#: ``progress(done, total, current task id)``; called before each run and once at the end.
Progress = Callable[[int, int, str], None]

#: Latency components summarised per run (ms, from the Turn rows).
RUN_LATENCY_FIELDS = ("ttfa_ms", "llm_ttft_ms", "first_chunk_ms", "stt_final_ms", "tts_ttfb_ms")


# ---------------------------------------------------------------- creating


@transaction.atomic
def evaluation_create(
    *,
    agent: Agent,
    tasks: Any,
    task_source: str,
    mode: str = Evaluation.Mode.TEXT,
    repetitions: int = 1,
    caller_pool: ModelPool | None = None,
    created_by: Any = None,
) -> Evaluation:
    """Create an evaluation and its pending runs (one per task and repetition).

    Raises ``ApplicationError`` when the agent's scenario has no sandboxes, the mode or the
    repetitions are out of range, or the tasks are malformed (the message names the task).
    """
    scenario = agent.scenario.domain
    if scenario not in DOMAIN_APPS:
        raise ApplicationError(
            f"agent {agent.slug!r} serves {scenario!r}, which has no scenario data to evaluate"
        )
    if mode not in Evaluation.Mode.values:
        raise ApplicationError(f"mode must be one of {', '.join(Evaluation.Mode.values)}")
    if not 1 <= repetitions <= 20:
        raise ApplicationError("repetitions must be between 1 and 20")
    try:
        tasks = tasks_validate(tasks, source=task_source, need_instructions=True)
    except ValueError as exc:
        raise ApplicationError(str(exc)) from exc
    if not tasks:
        raise ApplicationError(f"{task_source}: no tasks")
    evaluation = Evaluation.objects.create(
        agent=agent,
        mode=mode,
        repetitions=repetitions,
        task_source=task_source[:200],
        tasks=tasks,
        caller_pool=caller_pool,
        runs_total=len(tasks) * repetitions,
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    EvaluationRun.objects.bulk_create(
        EvaluationRun(evaluation=evaluation, task_id=str(task["id"]), repetition=repetition)
        for repetition in range(1, repetitions + 1)
        for task in tasks
    )
    return evaluation


def evaluation_enqueue(evaluation: Evaluation) -> None:
    """Start the evaluation as a Celery job once the transaction commits. Without a broker
    (``CELERY_TASK_ALWAYS_EAGER``, the embedded default) the job runs in a background thread
    of this process instead, so a web request never waits for it."""
    from parley.evaluations.tasks import evaluation_execute

    def send() -> None:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            thread = threading.Thread(
                target=_run_in_thread,
                args=(evaluation.id,),
                name=f"evaluation-{evaluation.id}",
                daemon=True,
            )
            thread.start()
            return
        result = evaluation_execute.delay(str(evaluation.id))
        Evaluation.objects.filter(pk=evaluation.pk).update(job_id=result.id)

    transaction.on_commit(send)


def _run_in_thread(evaluation_id: uuid.UUID) -> None:
    try:
        evaluation_run(evaluation_id)
    except Exception:
        logger.exception("evaluation %s failed", evaluation_id)
    finally:
        connections.close_all()


# ---------------------------------------------------------------- running


def evaluation_run(
    evaluation_id: uuid.UUID | str,
    *,
    call_url: str | None = None,
    out_dir: Path | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Run every pending run of the evaluation (sync entry point; starts an event loop).

    ``call_url``: the caller WebSocket's base URL for voice mode (default
    ``settings.PARLEY_CALL_URL``). ``out_dir``: also write ``<task id>[-r<n>].json`` per run and
    ``summary.json``. Raises ``Evaluation.DoesNotExist``; any other failure marks the
    evaluation ``failed`` with the reason and is re-raised.
    """
    return asyncio.run(
        evaluation_run_async(evaluation_id, call_url=call_url, out_dir=out_dir, progress=progress)
    )


async def evaluation_run_async(
    evaluation_id: uuid.UUID | str,
    *,
    call_url: str | None = None,
    out_dir: Path | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """The coroutine behind :func:`evaluation_run` (for a caller already on an event loop,
    e.g. next to an in-process Daphne server)."""
    evaluation = await database_sync_to_async(_evaluation_begin)(evaluation_id)
    call_url = call_url or settings.PARLEY_CALL_URL
    try:
        tasks = {str(t["id"]): t for t in evaluation.tasks}
        runs = await database_sync_to_async(_runs_to_do)(evaluation)
        done = evaluation.runs_total - len(runs)
        references: dict[str, dict[str, Any]] = {}
        for run in runs:
            if progress:
                progress(done, evaluation.runs_total, f"{run.task_id}#{run.repetition}")
            await _run_one(evaluation, run, tasks[run.task_id], references, call_url=call_url)
            done += 1
            await database_sync_to_async(_progress_save)(evaluation.pk)
            if out_dir is not None:
                await database_sync_to_async(_run_write)(run.pk, out_dir)
        if progress:
            progress(evaluation.runs_total, evaluation.runs_total, "")
        evaluation = await database_sync_to_async(_evaluation_finish)(evaluation.pk)
        if out_dir is not None:
            await database_sync_to_async(_summary_write)(evaluation, out_dir)
        return evaluation
    except BaseException as exc:
        await database_sync_to_async(_evaluation_fail)(evaluation.pk, exc)
        raise


def _evaluation_begin(evaluation_id: uuid.UUID | str) -> Evaluation:
    evaluation = Evaluation.objects.select_related("agent__scenario", "caller_pool").get(
        pk=evaluation_id
    )
    evaluation.status = Evaluation.Status.RUNNING
    evaluation.started_at = evaluation.started_at or timezone.now()
    evaluation.error = ""
    evaluation.save(update_fields=["status", "started_at", "error"])
    return evaluation


def _runs_to_do(evaluation: Evaluation) -> list[EvaluationRun]:
    return list(
        evaluation.runs.exclude(
            status__in=[EvaluationRun.Status.DONE, EvaluationRun.Status.ERROR]
        ).order_by("id")
    )


def _progress_save(evaluation_id: uuid.UUID) -> None:
    finished = EvaluationRun.objects.filter(
        evaluation_id=evaluation_id,
        status__in=[EvaluationRun.Status.DONE, EvaluationRun.Status.ERROR],
    ).count()
    Evaluation.objects.filter(pk=evaluation_id).update(runs_done=finished)


def _evaluation_finish(evaluation_id: uuid.UUID) -> Evaluation:
    evaluation = Evaluation.objects.get(pk=evaluation_id)
    evaluation.summary = scores_aggregate(run_score(r) for r in evaluation.runs.order_by("id"))
    evaluation.summary["mode"] = evaluation.mode
    evaluation.status = Evaluation.Status.DONE
    evaluation.finished_at = timezone.now()
    evaluation.runs_done = evaluation.runs.count()
    evaluation.save(update_fields=["summary", "status", "finished_at", "runs_done"])
    return evaluation


def _evaluation_fail(evaluation_id: uuid.UUID, exc: BaseException) -> None:
    reason = "cancelled" if isinstance(exc, asyncio.CancelledError) else f"{exc}"
    Evaluation.objects.filter(pk=evaluation_id).update(
        status=Evaluation.Status.FAILED,
        error=f"{type(exc).__name__}: {reason}"[:2000],
        finished_at=timezone.now(),
    )


def caller_build(evaluation: Evaluation, task: dict[str, Any]) -> Caller:
    """The simulated caller of one run: the caller pool's LLM when the evaluation names one
    (its key read from the pool's environment variable), else the scripted caller."""
    pool = evaluation.caller_pool
    if pool is None:
        return ScriptedCaller(instructions=task["instructions"])
    if pool.kind == ModelPool.Kind.SIMULATOR:
        from parley.agents.simulator_runtime import simulator_base_url

        base_url = simulator_base_url(ttft_ms=pool.sim_ttft_ms, itl_ms=pool.sim_itl_ms)
        api_key = "simulator"
    else:
        base_url = pool.base_url
        api_key = secret_env_read(pool.api_key_env)
        if pool.api_key_env and not api_key:
            raise ApplicationError(
                f"the caller's model pool {pool.slug!r} needs the environment variable "
                f"{pool.api_key_env!r}, which is not set"
            )
    return LLMCaller(
        instructions=task["instructions"],
        base_url=base_url,
        model=pool.model,
        api_key=api_key or "not-needed",
        timeout_s=pool.timeout_s,
    )


async def _run_one(
    evaluation: Evaluation,
    run: EvaluationRun,
    task: dict[str, Any],
    references: dict[str, dict[str, Any]],
    *,
    call_url: str,
) -> None:
    """One task, once: sandbox, caller, call, scores; never raises for a failed call (the
    run records the error), only for cancellation."""
    scenario = evaluation.agent.scenario.domain
    started = time.perf_counter()
    await database_sync_to_async(EvaluationRun.objects.filter(pk=run.pk).update)(
        status=EvaluationRun.Status.RUNNING, started_at=timezone.now(), error=""
    )
    env = await database_sync_to_async(environment_sandbox_create)(
        scenario=scenario, label=f"evaluation {evaluation.pk} {run.task_id}#{run.repetition}"
    )
    caller: Caller | None = None
    dialogue: list[dict[str, Any]] = []
    conversation_id: Any = None
    final_state: dict[str, Any] | None = None
    error = ""
    try:
        caller = await asyncio.to_thread(caller_build, evaluation, task)
        token = environment_call_token(env, agent_slug=evaluation.agent.slug)
        if evaluation.mode == Evaluation.Mode.TEXT:
            conversation_id = await _converse_text(evaluation, run, token, caller, dialogue)
        else:
            conversation_id = await _converse_voice(
                evaluation, run, token, caller, dialogue, call_url
            )
        final_state = await database_sync_to_async(scenario_state_export)(
            scenario=scenario, environment=env
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.warning("evaluation run %s failed: %s", run, exc)
        error = f"{type(exc).__name__}: {exc}"
        conversation_id = conversation_id or run.conversation_id
    finally:
        if caller is not None:
            await caller.aclose()
        await database_sync_to_async(environment_sandbox_drop)(env)
    if run.task_id not in references:
        references[run.task_id] = await database_sync_to_async(task_reference_state)(
            scenario=scenario, task=task
        )
    await database_sync_to_async(_run_score_save)(
        run_id=run.pk,
        task=task,
        conversation_id=conversation_id,
        caller_name=caller.name if caller is not None else "",
        caller_tokens=caller.tokens if caller is not None else 0,
        dialogue=dialogue,
        final_state=final_state,
        reference_state=references[run.task_id],
        error=error,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def _client(evaluation: Evaluation, run: EvaluationRun) -> dict[str, str]:
    return {
        "address": "evaluation",
        "user_agent": f"parley evaluation {evaluation.pk} {run.task_id}#{run.repetition}",
    }


async def _link(run: EvaluationRun, conversation_id: Any) -> None:
    """Link the run to its conversation as soon as it exists (visible while it runs)."""
    run.conversation_id = conversation_id
    await database_sync_to_async(EvaluationRun.objects.filter(pk=run.pk).update)(
        conversation_id=conversation_id
    )


async def _converse_text(
    evaluation: Evaluation,
    run: EvaluationRun,
    token: str,
    caller: Caller,
    dialogue: list[dict[str, Any]],
) -> Any:
    async with TextCall(
        agent_slug=evaluation.agent.slug,
        sandbox_token=token,
        client=_client(evaluation, run),
    ) as call:
        await _link(run, call.conversation_id)
        agent_said = call.greeting
        if agent_said:
            dialogue.append({"role": "agent", "text": agent_said})
        while (line := await caller.next_line(agent_said)) is not None:
            dialogue.append({"role": "caller", "text": line})
            reply = await call.say(line)
            agent_said = reply.text
            dialogue.append({"role": "agent", "text": agent_said, "turn": reply.turn})
        return call.conversation_id


async def _converse_voice(
    evaluation: Evaluation,
    run: EvaluationRun,
    token: str,
    caller: Caller,
    dialogue: list[dict[str, Any]],
    call_url: str,
) -> Any:
    async with VoiceCall(
        base_url=call_url, agent_slug=evaluation.agent.slug, sandbox_token=token
    ) as call:
        await _link(run, uuid.UUID(call.conversation_id) if call.conversation_id else None)
        agent_said = ""
        if call.greeting is not None:
            agent_said = call.greeting.heard
            dialogue.append(
                {"role": "agent", "text": call.greeting.text, "heard": agent_said, "turn": 0}
            )
        while (line := await caller.next_line(agent_said)) is not None:
            dialogue.append({"role": "caller", "text": line})
            reply = await call.say(line)
            agent_said = reply.heard
            dialogue.append(
                {
                    "role": "agent",
                    "text": reply.text,
                    "heard": reply.heard,
                    "caller_recognised": list(reply.caller_transcripts),
                    "turns": list(reply.turns),
                }
            )
        return run.conversation_id


# ---------------------------------------------------------------- scoring


def _run_score_save(
    *,
    run_id: int,
    task: dict[str, Any],
    conversation_id: Any,
    caller_name: str,
    caller_tokens: int,
    dialogue: list[dict[str, Any]],
    final_state: dict[str, Any] | None,
    reference_state: dict[str, Any],
    error: str,
    duration_ms: float,
) -> EvaluationRun:
    """Score a finished run from what was logged and save it."""
    calls = []
    turns: list[Turn] = []
    tokens = 0
    if conversation_id is not None:
        calls = [
            {"name": c.name, "arguments": c.arguments, "ok": c.status == ToolCall.Status.OK}
            for c in ToolCall.objects.filter(conversation_id=conversation_id).order_by(
                "started_at", "id"
            )
        ]
        turns = list(Turn.objects.filter(conversation_id=conversation_id, index__gt=0))
        for data in CallEvent.objects.filter(
            conversation_id=conversation_id, type="turn.ended"
        ).values_list("data", flat=True):
            tokens += sum(
                int(v) for k, v in (data.get("usage") or {}).items() if k != "total_tokens"
            )
    matched = action_match(task.get("actions", []), calls)
    run = EvaluationRun.objects.get(pk=run_id)
    run.status = EvaluationRun.Status.ERROR if error else EvaluationRun.Status.DONE
    run.conversation_id = conversation_id
    run.caller = caller_name
    run.dialogue = dialogue
    run.calls = calls
    run.action_match = matched.passed
    run.actions_matched = sum(matched.matched)
    run.actions_expected = len(matched.matched)
    run.extra_calls = matched.extra_calls
    run.state_match = None if final_state is None else state_match(final_state, reference_state)
    run.turns = len(turns)
    run.tokens = tokens
    run.caller_tokens = caller_tokens
    run.latency = _latency(turns)
    run.error = error[:4000]
    run.duration_ms = round(duration_ms, 1)
    run.save()
    return run


def _latency(turns: list[Turn]) -> dict[str, dict[str, Any]]:
    measured = {name: [getattr(t, name) for t in turns] for name in RUN_LATENCY_FIELDS}
    return {
        name: spread(v for v in values if v is not None)
        for name, values in measured.items()
        if any(v is not None for v in values)
    }


def run_score(run: EvaluationRun) -> RunScore:
    """The scoring dataclass of a saved run (what :func:`scores_aggregate` sums)."""
    ttfa = run.latency.get("ttfa_ms") or {}
    ttft = run.latency.get("llm_ttft_ms") or {}
    return RunScore(
        task_id=run.task_id,
        repetition=run.repetition,
        action_match=bool(run.action_match),
        actions_matched=run.actions_matched,
        actions_expected=run.actions_expected,
        extra_calls=run.extra_calls,
        state_match=run.state_match,
        turns=run.turns,
        tokens=run.tokens,
        ttfa_ms=[ttfa["p50"]] if ttfa.get("p50") is not None else [],
        ttft_ms=[ttft["p50"]] if ttft.get("p50") is not None else [],
        error=run.error,
    )


# ---------------------------------------------------------------- files


def run_as_dict(run: EvaluationRun) -> dict[str, Any]:
    """A run as written to ``<out>/<task id>[-r<n>].json``."""
    return {
        "task_id": run.task_id,
        "repetition": run.repetition,
        "status": run.status,
        "conversation_id": str(run.conversation_id) if run.conversation_id else None,
        "caller": run.caller,
        "scores": {
            "action_match": run.action_match,
            "actions_matched": run.actions_matched,
            "actions_expected": run.actions_expected,
            "extra_calls": run.extra_calls,
            "state_match": run.state_match,
            "turns": run.turns,
            "tokens": run.tokens,
            "caller_tokens": run.caller_tokens,
            "latency_ms": run.latency,
        },
        "calls": run.calls,
        "dialogue": run.dialogue,
        "error": run.error,
        "duration_ms": run.duration_ms,
    }


def _run_write(run_id: int, out_dir: Path) -> None:
    run = EvaluationRun.objects.select_related("evaluation").get(pk=run_id)
    suffix = f"-r{run.repetition}" if run.evaluation.repetitions > 1 else ""
    _write_json(out_dir / f"{run.task_id}{suffix}.json", run_as_dict(run))


def _summary_write(evaluation: Evaluation, out_dir: Path) -> None:
    runs = evaluation.runs.order_by("id")
    _write_json(
        out_dir / "summary.json",
        {
            "format": "parley-evaluation/v1",
            "evaluation_id": str(evaluation.pk),
            "agent": evaluation.agent.slug,
            "mode": evaluation.mode,
            "repetitions": evaluation.repetitions,
            "task_source": evaluation.task_source,
            "started_at": _iso(evaluation.started_at),
            "finished_at": _iso(evaluation.finished_at),
            "scores": evaluation.summary,
            "runs": [
                {
                    "task_id": r.task_id,
                    "repetition": r.repetition,
                    "status": r.status,
                    "action_match": r.action_match,
                    "state_match": r.state_match,
                    "actions": f"{r.actions_matched}/{r.actions_expected}",
                    "turns": r.turns,
                    "tokens": r.tokens,
                    "conversation_id": str(r.conversation_id) if r.conversation_id else None,
                    "error": r.error,
                }
                for r in runs
            ],
        },
    )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(content, indent=2, ensure_ascii=False) + "\n")


__all__ = [
    "Progress",
    "caller_build",
    "evaluation_create",
    "evaluation_enqueue",
    "evaluation_run",
    "evaluation_run_async",
    "run_as_dict",
    "run_score",
]
