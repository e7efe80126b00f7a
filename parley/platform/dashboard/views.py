"""Dashboard pages. Thin: validate with a form, call a service, render a template.

Every view is wrapped in :func:`~parley.platform.dashboard.roles.role_required`: ``read``
views serve admins and analysts, ``configure`` views (and every POST) admins only.
"""

from __future__ import annotations

import functools

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.templatetags.static import static
from django.views.decorators.http import require_POST

from parley.agents.api import call_grant_body
from parley.agents.call_tokens import call_token_issue
from parley.agents.models import Agent, PromptVersion, Scenario
from parley.agents.services import agent_publish, agent_save, prompt_rollback
from parley.platform.dashboard.diff import prompt_diff
from parley.platform.dashboard.forms import AgentForm
from parley.platform.dashboard.pages import not_found_page, render_page
from parley.platform.dashboard.roles import role_required
from parley.platform.dashboard.selectors import agents_overview
from parley.platform.errors import ApplicationError
from parley.platform.fleet.models import ModelPool

#: This module's pages sit under "Agents" in the sidebar.
_page = functools.partial(render_page, section="agents")
_not_found = functools.partial(not_found_page, section="agents")


def _agent(slug: str) -> Agent:
    return get_object_or_404(Agent.objects.select_related("scenario", "model_pool"), slug=slug)


def embed_snippet(request: HttpRequest, agent: Agent) -> str:
    """The ``<script>`` tag a web page embeds the widget with (docs/widget.md)."""
    src = request.build_absolute_uri(static("parley/widget.js"))
    return (
        f'<script src="{src}" data-agent="{agent.slug}" '
        f'data-key="{agent.publishable_key}" defer></script>'
    )


def page_origin(request: HttpRequest) -> str:
    """``scheme://host[:port]`` of the page the request came from (this server)."""
    return f"{request.scheme}://{request.get_host()}"


# Agents -----------------------------------------------------------------------------------


@role_required("read")
def agent_list(request: HttpRequest) -> HttpResponse:
    return _page(request, "agent_list.html", {"overview": agents_overview()})


@role_required("configure")
def agent_create(request: HttpRequest) -> HttpResponse:
    return _agent_form(request, agent=None)


@role_required("configure")
def agent_edit(request: HttpRequest, slug: str) -> HttpResponse:
    return _agent_form(request, agent=_agent(slug))


def _agent_form(request: HttpRequest, *, agent: Agent | None) -> HttpResponse:
    # The form writes submitted values into the instance while validating: keep the saved
    # name for the page header when the submission is refused.
    saved_name = agent.name if agent else ""
    form = AgentForm(request.POST if request.method == "POST" else None, instance=agent)
    if form.is_bound and form.is_valid():
        try:
            version = agent_save(
                agent=form.instance,
                tools=form.cleaned_data["tools"],
                prompt=form.cleaned_data["prompt"],
                by=request.user,  # type: ignore[arg-type]
            )
        except ApplicationError as exc:
            form.add_error(exc.extra.get("field"), exc.message)
        else:
            saved = form.instance
            if agent is None:
                messages.success(
                    request,
                    f"Created {saved.name}. It is a draft: try it with a test call, then "
                    "publish it.",
                )
            elif version is not None:
                messages.success(request, f"Saved. Prompt v{version.version} is now active.")
            else:
                messages.success(request, "Saved. The prompt is unchanged.")
            return redirect("dashboard:agent-detail", slug=saved.slug)
    return _page(
        request,
        "agent_form.html",
        {
            "form": form,
            "agent": agent,
            "saved_name": saved_name,
            "creating": agent is None,
            "setup_missing": _setup_missing(),
        },
    )


def _setup_missing() -> list[str]:
    """What an agent needs that this server does not have yet (a scenario, a model pool)."""
    missing = []
    if not Scenario.objects.exists():
        missing.append("scenario")
    if not ModelPool.objects.exists():
        missing.append("model pool")
    return missing


@role_required("read")
def agent_detail(request: HttpRequest, slug: str) -> HttpResponse:
    agent = _agent(slug)
    versions = list(agent.prompts.select_related("created_by").order_by("version"))
    first_with_text: dict[str, int] = {}
    previous: PromptVersion | None = None
    for version in versions:
        # Rollbacks add a version carrying an earlier text: say which.
        version.same_as = first_with_text.get(version.text)  # type: ignore[attr-defined]
        first_with_text.setdefault(version.text, version.version)
        version.previous = previous.version if previous else None  # type: ignore[attr-defined]
        previous = version
    active = next((v for v in versions if v.active), None)
    return _page(
        request,
        "agent_detail.html",
        {
            "agent": agent,
            "snippet": embed_snippet(request, agent),
            "origins": agent.allowed_origin_list,
            "versions": list(reversed(versions)),
            "active": active,
            "tools": list(agent.tools.order_by("name")),
            "calls_total": agent.conversations.count(),
        },
    )


@role_required("configure")
@require_POST
def agent_publish_view(request: HttpRequest, slug: str) -> HttpResponse:
    agent = _agent(slug)
    published = request.POST.get("published") == "1"
    agent_publish(agent=agent, published=published)
    if published:
        messages.success(request, f"{agent.name} is published: the widget and callers reach it.")
    else:
        messages.success(
            request, f"{agent.name} is a draft again: only dashboard test calls reach it."
        )
    return redirect("dashboard:agent-detail", slug=agent.slug)


# Prompts ----------------------------------------------------------------------------------


@role_required("read")
def prompt_diff_view(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    agent = _agent(slug)
    versions = list(agent.prompts.select_related("created_by").order_by("-version"))
    new = next((v for v in versions if v.version == version), None)
    if new is None:
        return _not_found(request, f"{agent.name} has no prompt v{version}.")
    against_param = request.GET.get("against", "")
    old: PromptVersion | None
    if against_param.isdigit():
        old = next((v for v in versions if v.version == int(against_param)), None)
        if old is None:
            return _not_found(request, f"{agent.name} has no prompt v{against_param}.")
    else:
        old = next((v for v in versions if v.version < version), None)
    diff = prompt_diff(old.text if old else "", new.text)
    return _page(
        request,
        "prompt_diff.html",
        {"agent": agent, "new": new, "old": old, "diff": diff, "versions": versions},
    )


@role_required("configure")
@require_POST
def prompt_rollback_view(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    agent = _agent(slug)
    try:
        created = prompt_rollback(agent=agent, version=version, by=request.user)  # type: ignore[arg-type]
    except ApplicationError as exc:
        messages.error(request, f"Nothing rolled back: {exc.message}.")
    else:
        messages.success(
            request, f"Rolled back: v{created.version} has the text of v{version} and is active."
        )
    return redirect("dashboard:agent-detail", slug=agent.slug)


# Test calls -------------------------------------------------------------------------------


@role_required("configure")
def agent_call(request: HttpRequest, slug: str) -> HttpResponse:
    return _page(request, "agent_call.html", {"agent": _agent(slug)})


@role_required("configure")
@require_POST
def call_token(request: HttpRequest, slug: str) -> JsonResponse:
    """A test-call token for this page's origin (the body of ``POST /api/v1/call-tokens``)."""
    agent = _agent(slug)
    token = call_token_issue(
        agent=agent, purpose="test", origin=page_origin(request), user=request.user
    )
    return JsonResponse(call_grant_body(request, agent=agent, token=token))
