"""Who may call what: the dashboard's roles as DRF permission classes.

Every API view needs one of three levels (:func:`parley.platform.dashboard.roles.role_allows`):

- :class:`ReadRole` (the default of ``REST_FRAMEWORK``): admins and analysts, analysts with
  safe methods only (GET, HEAD, OPTIONS);
- :class:`AnalyzeRole`: admins and analysts, any method (requesting a report or an export);
- :class:`ConfigureRole`: admins only (agents, prompts, publishing).

An anonymous request gets 401 with ``WWW-Authenticate: Token`` (DRF turns a refused
permission into 401 when no authenticator succeeded); a signed-in user without a role, or with
too small a role, gets 403 with a ``detail`` saying why.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from parley.platform.change_audit import audit_actor_set
from parley.platform.dashboard.roles import level_for, role_allows, role_of

NO_ROLE = (
    "Your account has no Parley role. Ask an administrator to give you the admin or analyst "
    "role (manage.py role --user NAME --role analyst)."
)
ADMINS_ONLY = "Only admins may do this; analysts read agents and conversations."


def request_role(request: Request) -> str | None:
    """``role_of(request.user)``, looked up once per request (one query) and kept on it."""
    cached = getattr(request, "_parley_role", None)
    if cached is not None and cached[0] is request.user:
        return cached[1]
    role = role_of(request.user)
    request._parley_role = (request.user, role)  # type: ignore[attr-defined]
    return role


class _RoleLevel(BasePermission):
    """Allow users whose role reaches :attr:`level`; ``message`` says why not."""

    level = "read"
    message = NO_ROLE

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # → 401 (NotAuthenticated), with WWW-Authenticate
        # DRF authenticated the request just now (a token is invisible to the middleware):
        # the changes this request makes are recorded as this user's.
        audit_actor_set(request.user)
        role = request_role(request)
        if role is None:
            self.message = NO_ROLE
            return False
        if not role_allows(role, level_for(self.level, request.method)):
            self.message = ADMINS_ONLY
            return False
        return True


class ReadRole(_RoleLevel):
    """Any role may read; changing anything (an unsafe method) needs the admin role."""

    level = "read"


class AnalyzeRole(_RoleLevel):
    """Any role, any method: analysts may ask for reports and exports."""

    level = "analyze"


class ConfigureRole(_RoleLevel):
    """Admins only: creating and changing agents and prompts, publishing."""

    level = "configure"
