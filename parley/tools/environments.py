"""Scenario environments: the live data an agent serves, and isolated sandboxes.

A scenario's domain data (the ``hospital``, ``hr`` and ``orders`` apps) lives in an
*environment*. The **live** environment is the project's own database. A **sandbox** is a
separate copy — a PostgreSQL schema in the same database, or a SQLite file beside the main
database — with the domain tables created from the models and loaded from the seed. Sandboxes
are for replays and evaluation runs: isolated from each other and from live data, created in
a fraction of a second, and dropped when done.

The tools do not know about environments. :class:`ScenarioRouter` (in ``DATABASE_ROUTERS``)
sends every query on a domain model to the database alias of the environment active in the
current context (:func:`environment_activate`, a ``contextvars`` variable, so it follows
``sync_to_async`` and Celery tasks that activate it), and to ``default`` when none is active.
Domain code that needs a transaction uses :func:`environment_atomic`, which opens it on the
active environment's alias.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any, TypeVar

from django.apps import apps
from django.conf import settings
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, transaction
from django.db.utils import load_backend

from parley.tools.models import Environment

logger = logging.getLogger(__name__)

#: Apps whose models hold scenario data and follow the active environment.
DOMAIN_APPS = frozenset({"hospital", "hr", "orders"})
LIVE_ALIAS = "default"
_ALIAS_RE = re.compile(r"^env_[0-9a-f]{32}$")

_CONFIGS: dict[str, dict[str, Any]] = {}  # sandbox alias → connection settings
_active_alias: contextvars.ContextVar[str] = contextvars.ContextVar(
    "parley_environment_alias", default=LIVE_ALIAS
)

F = TypeVar("F", bound=Callable[..., Any])


class ScenarioRouter:
    """Routes domain models to the active environment's database alias."""

    def _route(self, model: type[models.Model]) -> str | None:
        if model._meta.app_label in DOMAIN_APPS:
            alias = _active_alias.get()
            _connection_ensure(alias)
            return alias
        return None

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._route(model)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._route(model)

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        return obj1._state.db == obj2._state.db or None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # Sandboxes get their tables from the models (environment_sandbox_create), not from
        # migrations; nothing but the live database is ever migrated.
        return False if _ALIAS_RE.match(db) else None


def active_alias() -> str:
    """The database alias of the environment active in this context (``default`` = live),
    usable with ``connections[...]`` in this thread."""
    alias = _active_alias.get()
    _connection_ensure(alias)
    return alias


@contextlib.contextmanager
def environment_activate(environment: Environment | None) -> Iterator[None]:
    """Run the block against ``environment``'s data (``None``: the live data).

    A sandbox connection this block opened in this thread is closed when it ends, so worker
    threads (tool calls, sync_to_async) do not keep one connection per sandbox they touched.
    """
    alias = LIVE_ALIAS if environment is None else environment.alias
    opened_here = False
    if alias != LIVE_ALIAS:
        opened_here = not hasattr(connections._connections, alias)
        _connection_register(environment)  # type: ignore[arg-type]
    token = _active_alias.set(alias)
    try:
        yield
    finally:
        _active_alias.reset(token)
        if opened_here:
            _connection_close(alias)


def environment_atomic(func: F) -> F:
    """Like ``@transaction.atomic``, on the database of the environment active at call time."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with transaction.atomic(using=active_alias()):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def domain_models(scenario: str) -> list[type[models.Model]]:
    """The scenario's concrete models, parents before children (creation order)."""
    found = [m for m in apps.get_app_config(scenario).get_models() if not m._meta.proxy]
    ordered: list[type[models.Model]] = []

    def visit(model: type[models.Model]) -> None:
        if model in ordered:
            return
        for field in model._meta.get_fields():
            related = getattr(field, "related_model", None)
            if field.many_to_one and related in found and related is not model:
                visit(related)
        ordered.append(model)

    for model in found:
        visit(model)
    return ordered


def environment_live(scenario: str) -> Environment:
    """The scenario's live environment row (created on first use)."""
    env, _ = Environment.objects.get_or_create(
        scenario=scenario, kind=Environment.Kind.LIVE, defaults={"label": "live"}
    )
    return env


def environment_sandbox_create(*, scenario: str, label: str = "") -> Environment:
    """Create a sandbox of ``scenario`` loaded from its seed. Raises ``LookupError`` for an
    unknown scenario and ``ImproperlyConfigured`` on a database other than PostgreSQL or
    SQLite. The caller removes it with :func:`environment_sandbox_drop`."""
    if scenario not in DOMAIN_APPS:
        raise LookupError(f"unknown scenario {scenario!r}")
    started = time.perf_counter()
    env = Environment.objects.create(scenario=scenario, kind=Environment.Kind.SANDBOX, label=label)
    try:
        _storage_create(env)
        with environment_activate(env):
            connection = connections[env.alias]
            with connection.schema_editor() as editor:
                for model in domain_models(scenario):
                    editor.create_model(model)
            seed = import_module(f"parley.tools.{scenario}.seed")
            getattr(seed, f"{scenario}_seed_load")()
    except BaseException:
        environment_sandbox_drop(env)
        raise
    env.seed_ms = (time.perf_counter() - started) * 1000
    env.save(update_fields=["seed_ms"])
    return env


def environment_sandbox_drop(env: Environment) -> None:
    """Delete a sandbox's data and its row. Idempotent; refuses the live environment."""
    if env.kind != Environment.Kind.SANDBOX:
        raise ValueError("only sandboxes can be dropped")
    alias = env.alias
    _connection_forget(alias)
    vendor = connections[LIVE_ALIAS].vendor
    if vendor == "postgresql":
        with connections[LIVE_ALIAS].cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{alias}" CASCADE')
    elif vendor == "sqlite":
        path = _sqlite_path(alias)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    Environment.objects.filter(pk=env.pk).delete()


@contextlib.contextmanager
def sandbox(*, scenario: str, label: str = "") -> Iterator[Environment]:
    """A fresh sandbox, active inside the block and dropped after it."""
    env = environment_sandbox_create(scenario=scenario, label=label)
    try:
        with environment_activate(env):
            yield env
    finally:
        environment_sandbox_drop(env)


def environment_get(environment_id: Any) -> Environment:
    """Raises ``Environment.DoesNotExist``."""
    return Environment.objects.get(pk=environment_id)


#: Salt of sandbox call tokens (``django.core.signing``), and how long one is valid (s).
_CALL_TOKEN_SALT = "parley.environment.call"
CALL_TOKEN_MAX_AGE_S = 3600


def environment_call_token(env: Environment, *, agent_slug: str) -> str:
    """A signed token that lets one agent's calls run their tools in the sandbox ``env``
    (``?sandbox=TOKEN`` on the caller WebSocket). Signed with ``SECRET_KEY``: only this
    server can mint one, so a caller cannot point a call at another environment."""
    if env.kind != Environment.Kind.SANDBOX:
        raise ValueError("only sandboxes are chosen per call")
    return signing.dumps({"env": str(env.pk), "agent": agent_slug}, salt=_CALL_TOKEN_SALT)


def environment_from_call_token(token: str, *, agent_slug: str, scenario: str) -> Environment:
    """The sandbox a call token names. Raises ``ValueError`` with the reason when the token is
    forged, expired (:data:`CALL_TOKEN_MAX_AGE_S`), for another agent or scenario, or its
    sandbox is gone."""
    try:
        payload = signing.loads(token, salt=_CALL_TOKEN_SALT, max_age=CALL_TOKEN_MAX_AGE_S)
    except signing.SignatureExpired as exc:
        raise ValueError("the sandbox token has expired") from exc
    except signing.BadSignature as exc:
        raise ValueError("the sandbox token is not valid") from exc
    if payload.get("agent") != agent_slug:
        raise ValueError("the sandbox token was issued for another agent")
    env = Environment.objects.filter(pk=payload.get("env"), kind=Environment.Kind.SANDBOX).first()
    if env is None:
        raise ValueError("the sandbox of this token no longer exists")
    if env.scenario != scenario:
        raise ValueError(f"the sandbox holds {env.scenario!r} data, the agent serves {scenario!r}")
    return env


# ---------------------------------------------------------------- storage


def _sqlite_path(alias: str) -> Path:
    main = Path(connections[LIVE_ALIAS].settings_dict["NAME"])
    return Path(getattr(settings, "PARLEY_SANDBOX_DIR", "") or main.parent / "sandboxes") / (
        f"{alias}.sqlite3"
    )


def _storage_create(env: Environment) -> None:
    vendor = connections[LIVE_ALIAS].vendor
    if vendor == "postgresql":
        with connections[LIVE_ALIAS].cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{env.alias}"')
    elif vendor == "sqlite":
        _sqlite_path(env.alias).parent.mkdir(parents=True, exist_ok=True)
    else:
        raise ImproperlyConfigured(
            f"scenario sandboxes need PostgreSQL or SQLite; this database is {vendor}"
        )
    _connection_register(env)


def _connection_register(env: Environment) -> None:
    """Remember how to connect to ``env.alias`` (process-wide) and connect this thread."""
    alias = env.alias
    if alias not in _CONFIGS:
        config = dict(connections[LIVE_ALIAS].settings_dict)
        config["OPTIONS"] = dict(config.get("OPTIONS") or {})
        if connections[LIVE_ALIAS].vendor == "postgresql":
            config["OPTIONS"]["options"] = f"-c search_path={alias}"
        else:
            config["NAME"] = str(_sqlite_path(alias))
        _CONFIGS[alias] = config
    _connection_ensure(alias)


def _connection_ensure(alias: str) -> None:
    """Give this thread a connection object for a sandbox alias.

    Sandbox aliases are not added to ``settings.DATABASES``: Django's handler keeps one
    connection per thread and creates it from its settings, so the object is built here from
    the remembered configuration, in whichever thread first routes a query to the sandbox.
    """
    if alias == LIVE_ALIAS or hasattr(connections._connections, alias):
        return
    config = _CONFIGS.get(alias)
    if config is None:
        raise LookupError(f"no sandbox {alias!r} in this process")
    backend = load_backend(config["ENGINE"])
    connections[alias] = backend.DatabaseWrapper(config, alias)


def _connection_close(alias: str, *, force: bool = False) -> None:
    """Close and remove this thread's connection to a sandbox alias (if any, and idle unless
    ``force``)."""
    connection = getattr(connections._connections, alias, None)
    if connection is not None and (force or not connection.in_atomic_block):
        connection.close()
        delattr(connections._connections, alias)


def _connection_forget(alias: str) -> None:
    _connection_close(alias, force=True)
    _CONFIGS.pop(alias, None)
