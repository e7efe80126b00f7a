"""Secrets never reach a log line: the values of secret environment variables are redacted
from every log record.

Vendor API keys, the Django secret key, the metrics token and database passwords live only in
environment variables (the database stores the variable's *name*, e.g. ``ModelPool.api_key_env``;
docs/security.md). A library logging at DEBUG can still print them: the ``websockets`` client
logs its handshake headers (``Authorization: Token ...``), an SDK may log its request. So every
record is rewritten before any handler sees it:

- :class:`SecretRedactingFilter` sits on every handler of ``settings.LOGGING``;
- :func:`logging_configure` (``settings.LOGGING_CONFIG``) also wraps the log record factory, so
  handlers that Django's config does not know (Celery's, pytest's ``caplog``, a library's own)
  get redacted records too.

Which variables are secret: the names in :data:`SECRET_ENV_NAMES`, every variable whose name
looks like a secret (:data:`SECRET_NAME_PATTERN`), every name passed to :func:`secret_env_read`
(the per-pool and per-server ``api_key_env`` names come through it), and the passwords of the
``*_URL`` variables (``DATABASE_URL``, ``REDIS_URL``). Values shorter than
:data:`MIN_SECRET_CHARS` are left alone (redacting "1" or "true" would garble every line).
A value is replaced by ``[REDACTED:<VARIABLE>]``.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

#: Variables that always hold secrets (the vendor key variables' default names included;
#: ``DEEPGRAM_API_KEY_ENV`` / ``ELEVENLABS_API_KEY_ENV`` may name others, read at call time
#: through :func:`secret_env_read`).
SECRET_ENV_NAMES = (
    "DJANGO_SECRET_KEY",
    "DEEPGRAM_API_KEY",
    "ELEVENLABS_API_KEY",
    "OPENAI_API_KEY",
    "PARLEY_METRICS_TOKEN",
)
#: Any variable whose name contains one of these words is treated as a secret.
SECRET_NAME_PATTERN = re.compile(r"API_KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|_KEY$", re.I)
#: Shorter values are not redacted (characters).
MIN_SECRET_CHARS = 8
#: How long the set of secret values is cached before the environment is read again (s).
CACHE_S = 1.0
#: Variables whose value is a URL that may carry a password (``scheme://user:pass@host``).
_URL_NAME_PATTERN = re.compile(r"_URL$")

_lock = threading.Lock()
_registered: set[str] = set()
_cache: tuple[float, tuple[tuple[str, str], ...]] = (0.0, ())


def secret_env_register(*names: str) -> None:
    """Treat the environment variables ``names`` as secrets from now on (empty names ignored)."""
    global _cache
    with _lock:
        _registered.update(n for n in names if n)
        _cache = (0.0, ())


def secret_env_read(name: str) -> str:
    """The value of the environment variable ``name`` (stripped; ``""`` when unset or when
    ``name`` is empty), registering ``name`` as a secret so its value is redacted from logs."""
    if not name:
        return ""
    if name not in _registered:
        secret_env_register(name)
    return os.environ.get(name, "").strip()


def _candidates() -> tuple[tuple[str, str], ...]:
    """``(value, variable)`` pairs to redact, longest value first."""
    environ = dict(os.environ)
    names = set(SECRET_ENV_NAMES) | _registered
    names |= {n for n in environ if SECRET_NAME_PATTERN.search(n)}
    pairs: dict[str, str] = {}
    for name in names:
        value = environ.get(name, "").strip()
        if len(value) >= MIN_SECRET_CHARS:
            pairs.setdefault(value, name)
    for name, value in environ.items():
        if _URL_NAME_PATTERN.search(name) and "@" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password and len(password) >= MIN_SECRET_CHARS:
                pairs.setdefault(password, name)
    return tuple(sorted(pairs.items(), key=lambda p: -len(p[0])))


def secret_values() -> tuple[tuple[str, str], ...]:
    """The ``(value, variable)`` pairs redacted now (cached for :data:`CACHE_S`)."""
    global _cache
    now = time.monotonic()
    at, pairs = _cache
    if now - at > CACHE_S or at == 0.0:
        pairs = _candidates()
        with _lock:
            _cache = (now, pairs)
    return pairs


def redact(text: str) -> str:
    """``text`` with every secret value replaced by ``[REDACTED:<VARIABLE>]``."""
    for value, name in secret_values():
        if value in text:
            text = text.replace(value, f"[REDACTED:{name}]")
    return text


def redact_record(record: logging.LogRecord) -> None:
    """Rewrite ``record`` in place: its message (arguments merged in), exception text and
    stack text carry no secret value. Idempotent."""
    if getattr(record, "_parley_redacted", False) or not secret_values():
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to the handler's error path
        message = None
    if message is not None:
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._parley_redacted = True


class SecretRedactingFilter(logging.Filter):
    """A logging filter that redacts secret values from each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def record_factory_install() -> None:
    """Wrap the log record factory so every record is redacted when it is made (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_parley_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        redact_record(record)
        return record

    factory._parley_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def logging_configure(config: dict[str, Any]) -> None:
    """``settings.LOGGING_CONFIG``: ``logging.config.dictConfig(config)``, then
    :func:`record_factory_install`."""
    logging.config.dictConfig(config)
    record_factory_install()
