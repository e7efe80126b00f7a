"""API test fixtures: one user per role, API clients authenticated with a DRF token."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from parley.platform.dashboard.roles import ADMIN, ANALYST, role_assign


def user_with(username: str, *, role: str | None) -> object:
    """A user in the group of ``role`` (``None``: in neither)."""
    user = get_user_model().objects.create_user(username=username, password="unused-password")
    role_assign(user=user, role=role)
    return user


def token_client(user: object | None) -> APIClient:
    """A client sending ``Authorization: Token <key>`` (anonymous for ``None``)."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def admin_user(db):  # noqa: ANN001, ANN201
    return user_with("ada", role=ADMIN)


@pytest.fixture
def analyst_user(db):  # noqa: ANN001, ANN201
    return user_with("ana", role=ANALYST)


@pytest.fixture
def admin(admin_user) -> APIClient:  # noqa: ANN001
    return token_client(admin_user)


@pytest.fixture
def analyst(analyst_user) -> APIClient:  # noqa: ANN001
    return token_client(analyst_user)


@pytest.fixture
def clients(db) -> Callable[[str], APIClient]:  # noqa: ANN001
    """``clients(role)`` for role in anonymous, norole, analyst, admin: a fresh user's client."""

    def make(role: str) -> APIClient:
        if role == "anonymous":
            return token_client(None)
        if role == "norole":
            return token_client(user_with("nobody", role=None))
        return token_client(
            user_with(f"{role}-user", role={"admin": ADMIN, "analyst": ANALYST}[role])
        )

    return make
