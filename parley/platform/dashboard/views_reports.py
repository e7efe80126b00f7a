"""Analyst pages: per-agent day reports and bulk exports (docs/reports.md).

GET pages need the ``read`` level; asking for a report or an export (POST) needs ``analyze``,
which analysts have. Files are served only for ``done`` jobs: a queued, running or failed one
answers 409, a finished one whose file is gone 404. Downloading an export is written to the
access audit log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from parley.agents.models import Agent
from parley.conversations.analytics import DAY_COMPONENTS
from parley.conversations.models import AccessLog, ConversationExport, JobStatus
from parley.conversations.report_selectors import (
    agent_day_report_file,
    agent_day_report_get,
    agent_day_report_list,
    conversation_export_file,
    conversation_export_visible,
    conversation_exports_visible,
)
from parley.conversations.report_services import (
    EXPORT_MAX_DAYS,
    agent_day_report_request,
    conversation_export_download_record,
    conversation_export_request,
    utc_today,
)
from parley.platform.dashboard.forms_reports import ExportForm, ReportGenerateForm
from parley.platform.dashboard.pages import LATENCY_LABELS, not_found_page, render_page
from parley.platform.dashboard.roles import role_required
from parley.platform.errors import ApplicationError
from parley.platform.http import client_address

REPORTS_PER_PAGE = 50

#: Geometry of the TTFA bar chart (SVG user units, rendered at this size).
CHART_WIDTH = 720
CHART_HEIGHT = 240
_CHART_LEFT, _CHART_RIGHT, _CHART_TOP, _CHART_BOTTOM = 40, 8, 22, 40


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


# Day reports ---------------------------------------------------------------------------------


@role_required("read")
def report_list(request: HttpRequest) -> HttpResponse:
    """Day reports, newest first, optionally of one agent (``?agent=slug``), and the form
    that asks for one."""
    agents = list(Agent.objects.order_by("name"))
    agent = next((a for a in agents if a.slug == request.GET.get("agent")), None)
    page = Paginator(agent_day_report_list(agent=agent), REPORTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    form = ReportGenerateForm(
        initial={
            "agent": agent.slug if agent else (agents[0].slug if agents else None),
            "day": utc_today() - dt.timedelta(days=1),
        }
    )
    form.agents_show(agents)
    return render_page(
        request,
        "reports_list.html",
        {"agents": agents, "agent": agent, "page": page, "form": form, "today": utc_today()},
        section="reports",
    )


@role_required("read")
def report_detail(request: HttpRequest, slug: str, day: str) -> HttpResponse:
    """One agent's day: its figures once generated, else its status and the button that
    generates it."""
    agent = Agent.objects.filter(slug=slug).first()
    report_day = _day(day)
    if agent is None or report_day is None:
        return not_found_page(request, "No such agent or day.", section="reports")
    report = agent_day_report_get(agent=agent, day=report_day)
    figures = report.figures if report and report.status == JobStatus.DONE else None
    context: dict[str, Any] = {
        "agent": agent,
        "day": report_day,
        "report": report,
        "figures": figures,
        "pending": report is not None and report.status in (JobStatus.QUEUED, JobStatus.RUNNING),
        "future": report_day > utc_today(),
    }
    if figures:
        context["latency_rows"] = _latency_rows(figures)
        context["chart"] = ttfa_chart(figures["ttfa_histogram"]["bins"])
    return render_page(request, "reports_detail.html", context, section="reports")


def _latency_rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in DAY_COMPONENTS:
        summary = figures["latency"][name]
        label, help_text = LATENCY_LABELS[name]
        rows.append({"name": name, "label": label, "help": help_text, **summary})
    return rows


def ttfa_chart(bins: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of the TTFA histogram as an SVG bar chart, for the template to draw.

    One bar per bin, its height proportional to the bin's count (the tallest reaches the top
    of the plot); ``tone`` ``fast`` (< 1 s), ``ok`` (< 2 s) or ``slow`` colours it. Also three
    horizontal grid lines with their counts. All coordinates in SVG user units.
    """
    plot_w = CHART_WIDTH - _CHART_LEFT - _CHART_RIGHT
    plot_h = CHART_HEIGHT - _CHART_TOP - _CHART_BOTTOM
    base = _CHART_TOP + plot_h
    top_count = max([b["count"] for b in bins] + [1])
    slot = plot_w / max(len(bins), 1)
    bars = []
    for i, bin_ in enumerate(bins):
        height = plot_h * bin_["count"] / top_count
        x = _CHART_LEFT + i * slot + slot * 0.14
        high = bin_["hi_ms"] if bin_["hi_ms"] is not None else float("inf")
        tone = "fast" if high <= 1000 else "ok" if high <= 2000 else "slow"
        bars.append(
            {
                "x": round(x, 1),
                "y": round(base - height, 1),
                "width": round(slot * 0.72, 1),
                "height": round(height, 1),
                "center": round(_CHART_LEFT + (i + 0.5) * slot, 1),
                "count_y": round(base - height - 6, 1),
                "label": bin_["label"],
                "count": bin_["count"],
                "tone": tone,
            }
        )
    grid = []
    for fraction in (0.5, 1.0):
        value = top_count * fraction
        grid.append(
            {
                "y": round(base - plot_h * fraction, 1),
                "label": f"{value:g}" if value == int(value) else f"{value:.1f}",
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": _CHART_LEFT,
        "tick_x": _CHART_LEFT - 6,
        "right": CHART_WIDTH - _CHART_RIGHT,
        "base": base,
        "label_y": base + 18,
        "axis_y": base + 34,
        "bars": bars,
        "grid": grid,
        "total": sum(b["count"] for b in bins),
    }


@role_required("analyze")
@require_POST
def report_generate(request: HttpRequest) -> HttpResponse:
    """Queue (or re-queue) the report of the posted agent and day; back to its page."""
    form = ReportGenerateForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
        messages.error(request, f"No report requested: {errors}")
        return redirect("dashboard:reports")
    agent, day = form.cleaned_data["agent"], form.cleaned_data["day"]
    try:
        agent_day_report_request(agent=agent, day=day, user=request.user)
    except ApplicationError as exc:
        messages.error(request, f"No report requested: {exc.message}")
        return redirect("dashboard:reports")
    messages.success(request, f"Report of {agent.name} for {day:%Y-%m-%d} requested.")
    return redirect("dashboard:report-detail", slug=agent.slug, day=f"{day:%Y-%m-%d}")


@role_required("read")
def report_download(request: HttpRequest, slug: str, day: str, fmt: str) -> HttpResponse:
    """The JSON or CSV file of a ``done`` report (409 while it is not done)."""
    agent = Agent.objects.filter(slug=slug).first()
    report_day = _day(day)
    if agent is None or report_day is None or fmt not in ("json", "csv"):
        return not_found_page(request, "No such report.", section="reports")
    report = agent_day_report_get(agent=agent, day=report_day)
    if report is None:
        return not_found_page(request, "Nobody asked for this report yet.", section="reports")
    if report.status != JobStatus.DONE:
        return HttpResponse(
            f"The report is {report.status}; its files are served once it is done.",
            status=409,
            content_type="text/plain; charset=utf-8",
        )
    path = agent_day_report_file(report=report, fmt=fmt)  # type: ignore[arg-type]
    if path is None:
        return not_found_page(
            request, "The report's file is gone; generate it again.", section="reports"
        )
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"{agent.slug}-{report_day:%Y-%m-%d}.{fmt}",
        content_type="application/json" if fmt == "json" else "text/csv; charset=utf-8",
    )


# Bulk exports --------------------------------------------------------------------------------

#: Exports listed on the exports page (newest first).
EXPORTS_SHOWN = 50


def export_state(export: ConversationExport) -> dict[str, Any]:
    """What the exports page and its progress endpoint show of ``export``."""
    done = export.status == JobStatus.DONE
    return {
        "id": str(export.pk),
        "status": export.status,
        "total": export.total,
        "done": export.done,
        "percent": round(export.progress * 100),
        "size_bytes": export.size_bytes,
        "error": export.error,
        "download_url": reverse("dashboard:export-download", args=[export.pk]) if done else None,
    }


def _last_day(export: ConversationExport) -> dt.date:
    # ``until`` is exclusive: the dashboard's ranges end at midnight after their last day.
    return (export.until - dt.timedelta(microseconds=1)).date()


def _export_page(request: HttpRequest, form: ExportForm, *, status: int = 200) -> HttpResponse:
    exports = conversation_exports_visible(
        user=request.user, role=getattr(request, "dashboard_role", None)
    )[:EXPORTS_SHOWN]
    form.agents_show(list(Agent.objects.order_by("name")))
    rows = [
        {"export": export, "state": export_state(export), "last_day": _last_day(export)}
        for export in exports
    ]
    return render_page(
        request,
        "exports.html",
        {"form": form, "rows": rows, "max_days": EXPORT_MAX_DAYS},
        section="exports",
        status=status,
    )


@role_required("read")
def export_list(request: HttpRequest) -> HttpResponse:
    """The export form and the latest exports with their progress."""
    today = utc_today()
    form = ExportForm(initial={"since": today - dt.timedelta(days=7), "until": today})
    return _export_page(request, form)


@role_required("analyze")
@require_POST
def export_create(request: HttpRequest) -> HttpResponse:
    """Queue an export of the posted days; the form comes back with its errors (400)."""
    form = ExportForm(request.POST)
    if form.is_valid():
        since, until = form.range()
        try:
            conversation_export_request(
                user=request.user,
                since=since,
                until=until,
                agent=form.cleaned_data["agent"],
                redact=form.cleaned_data["redact"],
                channel=AccessLog.Channel.DASHBOARD,
                address=client_address(request),
            )
        except ApplicationError as exc:
            form.add_error(exc.extra.get("field"), exc.message)
        else:
            messages.success(request, "Export requested. It appears below as it is written.")
            return redirect("dashboard:exports")
    return _export_page(request, form, status=400)


def _export(request: HttpRequest, export_id: Any) -> ConversationExport | None:
    """The export if this user may see it (admins: all; analysts: their own)."""
    return conversation_export_visible(
        export_id=export_id, user=request.user, role=getattr(request, "dashboard_role", None)
    )


@role_required("read")
def export_progress(request: HttpRequest, export_id: Any) -> JsonResponse:
    """``{"id", "status", "total", "done", "percent", "size_bytes", "error",
    "download_url"}`` of one export (polled by the exports page)."""
    export = _export(request, export_id)
    if export is None:
        return JsonResponse({"error": "no such export"}, status=404)
    return JsonResponse(export_state(export))


@role_required("read")
def export_download(request: HttpRequest, export_id: Any) -> HttpResponse:
    """The JSONL file of a ``done`` export, written to the access log; 409 before."""
    export = _export(request, export_id)
    if export is None:
        return not_found_page(request, "No such export.", section="exports")
    if export.status != JobStatus.DONE:
        return HttpResponse(
            f"The export is {export.status}; it can be downloaded once it is done.",
            status=409,
            content_type="text/plain; charset=utf-8",
        )
    path = conversation_export_file(export=export)
    if path is None:
        return not_found_page(
            request, "The export's file is gone; request it again.", section="exports"
        )
    conversation_export_download_record(
        export=export,
        user=request.user,
        channel=AccessLog.Channel.DASHBOARD,
        address=client_address(request),
    )
    suffix = "-redacted" if export.redact else ""
    name = f"parley-export-{export.since:%Y%m%d}-{_last_day(export):%Y%m%d}{suffix}.jsonl"
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=name, content_type="application/x-ndjson"
    )
