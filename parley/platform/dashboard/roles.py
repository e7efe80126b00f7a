"""Dashboard roles: ``admin`` configures agents, ``analyst`` only reads.

A role is membership of the Django group of the same name (superusers are always admins).
``manage.py role --user NAME --role admin|analyst|none`` assigns one; docs/dashboard.md.
Every dashboard view is wrapped in :func:`role_required` with the level it needs: ``read``
(both roles; unsafe methods refused to analysts, whatever the view), ``analyze`` (both roles,
POST included: asking for a report or an export) or ``configure`` (admins only).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

ADMIN = "admin"
ANALYST = "analyst"
ROLES = (ADMIN, ANALYST)

#: What each role may do, by the level a view asks for.
_LEVELS = {ADMIN: {"read", "analyze", "configure"}, ANALYST: {"read", "analyze"}}

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def role_of(user: AbstractBaseUser | AnonymousUser | None) -> str | None:
    """``"admin"`` for superusers and members of the admin group, ``"analyst"`` for members
    of the analyst group, else ``None`` (no access to the dashboard)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if getattr(user, "is_superuser", False):
        return ADMIN
    names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))  # type: ignore[union-attr]
    if ADMIN in names:
        return ADMIN
    if ANALYST in names:
        return ANALYST
    return None


def roles_ensure() -> dict[str, Group]:
    """Create the role groups if they are missing (idempotent)."""
    return {name: Group.objects.get_or_create(name=name)[0] for name in ROLES}


def role_assign(*, user: AbstractBaseUser, role: str | None) -> None:
    """Make ``user`` a member of exactly the group of ``role`` (``None``: of neither).

    Raises ``ValueError`` for an unknown role. A superuser stays an admin whatever this says.
    """
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    groups = roles_ensure()
    # Touch only what changes, so the audit log records exactly the memberships that changed.
    current = set(user.groups.filter(name__in=ROLES))  # type: ignore[attr-defined]
    wanted = {groups[role]} if role is not None else set()
    if current - wanted:
        user.groups.remove(*(current - wanted))  # type: ignore[attr-defined]
    if wanted - current:
        user.groups.add(*(wanted - current))  # type: ignore[attr-defined]


def forbidden(request: HttpRequest, *, reason: str) -> HttpResponse:
    """The dashboard's 403 page, saying why."""
    return render(
        request,
        "dashboard/forbidden.html",
        {"reason": reason, "role": role_of(request.user)},
        status=403,
    )


def role_required(level: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., Any]]:
    """Guard a dashboard view: ``level`` is ``"read"`` (any role, safe methods for analysts),
    ``"analyze"`` (any role, any method) or ``"configure"`` (admins).

    Anonymous users are sent to the login page; users without a role, analysts on a
    configure view and analysts sending an unsafe method to a read view get the 403 page.
    The view finds the role in ``request.dashboard_role``.
    """
    if level not in ("read", "analyze", "configure"):
        raise ValueError(f"unknown level {level!r}")

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse("dashboard:login"))
            role = role_of(request.user)
            if role is None:
                return forbidden(
                    request,
                    reason="Your account has no dashboard role. Ask an administrator to give "
                    "you the admin or analyst role.",
                )
            if not role_allows(role, level_for(level, request.method)):
                return forbidden(
                    request,
                    reason="Analysts can read agents and conversations but not change them. "
                    "Ask an administrator if something needs to change.",
                )
            request.dashboard_role = role  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        guarded.dashboard_level = level  # type: ignore[attr-defined]
        return guarded

    return decorate


def level_for(level: str, method: str | None) -> str:
    """The level a request needs: a ``read`` view asked with an unsafe method (POST, ...)
    needs ``configure``; otherwise the view's own level. Shared with the API's permissions."""
    return "configure" if level == "read" and method not in _SAFE_METHODS else level


def role_allows(role: str | None, level: str) -> bool:
    """Whether ``role`` may use views of ``level`` (``read``, ``analyze``, ``configure``)."""
    return role is not None and level in _LEVELS.get(role, set())
