"""Vendor API keys and other secrets: never a model field's value, never in a log line, a
transcript, an event row or a conversation's JSON (parley/platform/log_redaction.py)."""

from __future__ import annotations

import json
import logging
import re

import pytest
from channels.db import database_sync_to_async
from django.apps import apps
from django.db.models import PositiveIntegerField

# Imported here, not inside the call test: importing the ASGI module runs django.setup(), which
# re-applies LOGGING and would drop pytest's log-capturing handler mid-test.
import parley.platform.asgi  # noqa: F401
from parley.agents.models import Agent
from parley.conversations.models import CallEvent, Conversation
from parley.platform import log_redaction
from parley.platform.log_redaction import (
    SecretRedactingFilter,
    redact,
    secret_env_read,
    secret_env_register,
)
from parley.testing.deepgram_fake import FakeDeepgram, script_from_text
from parley.testing.elevenlabs_fake import FakeElevenLabs
from tests.agents.conftest import ws_call
from tests.agents.test_cloud_providers_call import CLIP_TEXT, caller_audio, speak_and_hang_up

DG_SENTINEL = "dg-SENTINEL-7f3a9c1e5b2d4f6a8c0e"
EL_SENTINEL = "el-SENTINEL-2b4d6f8a0c1e3a5c7e9f"

#: Model fields whose names look secret, and why their values are not secrets.
NOT_SECRETS = {
    ("fleet", "modelpool", "api_key_env"): "the NAME of the variable holding the key",
    ("fleet", "llmserver", "api_key_env"): "the NAME of the variable holding the key",
    ("agents", "agent", "publishable_key"): "public by design: it sits in the embed snippet",
    ("agents", "agent", "stt_keyterms"): "words Deepgram should expect",
    ("authtoken", "token", "key"): "Parley users' own API tokens (DRF), not vendor keys",
    ("authtoken", "tokenproxy", "key"): "the same table",
    ("auth", "user", "password"): "a salted hash",
    ("sessions", "session", "session_key"): "Django sessions",
    ("django_celery_beat", "periodictask", "routing_key"): "a Celery queue routing key",
    ("orders", "order", "optional_key_order"): "scenario data",
}
SECRET_FIELD = re.compile(r"key|secret|token|password|credential", re.I)


def test_no_model_field_holds_a_vendor_key() -> None:
    """Every field whose name looks like a secret is one we know holds no vendor key."""
    suspicious = {
        (m._meta.app_label, m._meta.model_name, f.name)
        for m in apps.get_models()
        for f in m._meta.get_fields()
        if getattr(f, "concrete", False)
        and SECRET_FIELD.search(f.name)
        and not f.is_relation
        and not isinstance(f, PositiveIntegerField)  # token counts
    }
    unexplained = {s for s in suspicious if s not in NOT_SECRETS and not s[2].endswith("_env")}
    assert not unexplained
    from parley.platform.fleet.models import LLMServer, ModelPool

    for model in (ModelPool, LLMServer):
        assert "never the key" in model._meta.get_field("api_key_env").help_text


# The filter -------------------------------------------------------------------------------


@pytest.fixture
def secret_env(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("DEEPGRAM_API_KEY", DG_SENTINEL)
    monkeypatch.setenv("VLLM_POOL_CREDS", "vllm-SENTINEL-pool-key-42")  # no secret-like name
    monkeypatch.setenv("DATABASE_URL", "postgres://parley:db-SENTINEL-pass@db:5432/parley")
    monkeypatch.setenv("PARLEY_LOG_LEVEL", "DEBUG")  # a short or plain value stays
    secret_env_register()  # drop the cache
    yield
    log_redaction._registered.discard("VLLM_POOL_CREDS")
    secret_env_register()


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("sdk", logging.DEBUG, __file__, 1, msg, args, exc_info)


def test_the_filter_redacts_message_arguments_and_tracebacks(secret_env) -> None:  # noqa: ANN001
    assert secret_env_read("VLLM_POOL_CREDS") == "vllm-SENTINEL-pool-key-42"  # now a secret
    handler_filter = SecretRedactingFilter()

    rec = record("> Authorization: Token %s", DG_SENTINEL)
    assert handler_filter.filter(rec) is True  # redacts, never drops
    assert rec.getMessage() == "> Authorization: Token [REDACTED:DEEPGRAM_API_KEY]"

    rec = record("headers=%(h)s", {"h": {"authorization": "Bearer vllm-SENTINEL-pool-key-42"}})
    handler_filter.filter(rec)
    assert "SENTINEL" not in rec.getMessage() and "[REDACTED:VLLM_POOL_CREDS]" in rec.getMessage()

    try:
        raise RuntimeError("connect failed for postgres://parley:db-SENTINEL-pass@db/parley")
    except RuntimeError as error:
        rec = record("boom", exc=error)
    handler_filter.filter(rec)
    formatted = logging.Formatter().format(rec)
    assert "db-SENTINEL-pass" not in formatted and "[REDACTED:DATABASE_URL]" in formatted

    assert redact("level DEBUG") == "level DEBUG"


def test_every_logger_and_handler_gets_redacted_records(secret_env, caplog) -> None:  # noqa: ANN001
    """The record factory covers handlers Django's LOGGING does not know (caplog's here)."""
    caplog.set_level(logging.DEBUG, logger="websockets.client")
    logging.getLogger("websockets.client").debug("> Authorization: Token %s", DG_SENTINEL)
    assert DG_SENTINEL not in caplog.text and "[REDACTED:DEEPGRAM_API_KEY]" in caplog.text
    from django.conf import settings

    handlers = settings.LOGGING["handlers"].values()
    assert all("redact_secrets" in h.get("filters", []) for h in handlers)


# A whole call ------------------------------------------------------------------------------


@pytest.fixture
async def sentinel_vendors(settings, monkeypatch):  # noqa: ANN001, ANN201
    async with (
        FakeDeepgram(api_key=DG_SENTINEL) as dg,
        FakeElevenLabs(api_key=EL_SENTINEL, speed=0) as el,
    ):
        settings.DEEPGRAM_URL = dg.url
        settings.ELEVENLABS_URL = el.url
        monkeypatch.setenv("DEEPGRAM_API_KEY", DG_SENTINEL)
        monkeypatch.setenv("ELEVENLABS_API_KEY", EL_SENTINEL)
        secret_env_register()
        yield dg, el


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
async def test_a_cloud_call_leaves_the_keys_nowhere(
    hospital_agent, sentinel_vendors, reports_dir, caplog
) -> None:  # noqa: ANN001
    dg, el = sentinel_vendors
    hospital_agent.stt_provider = Agent.STTProvider.DEEPGRAM
    hospital_agent.tts_provider = Agent.TTSProvider.ELEVENLABS
    await database_sync_to_async(hospital_agent.save)()
    caplog.set_level(logging.DEBUG)
    for name in ("websockets", "httpx", "httpcore", "deepgram", "elevenlabs", "parley"):
        caplog.set_level(logging.DEBUG, logger=name)

    audio, start_s, end_s = caller_audio()
    dg.set_script(script_from_text(CLIP_TEXT, start_s, end_s))
    call = await ws_call(hospital_agent.slug)
    await speak_and_hang_up(call, audio)
    # The keys were used: the fakes checked them.
    assert dg.connections[0].headers["authorization"] == f"Token {DG_SENTINEL}"
    assert el.requests and call.of("transcript.final")[0]["text"] == CLIP_TEXT
    conversation_id = call.of("session.started")[0]["conversation_id"]

    @database_sync_to_async
    def stored() -> str:
        conversation = Conversation.objects.get(pk=conversation_id)
        events = list(CallEvent.objects.filter(conversation_id=conversation_id).values())
        return json.dumps(
            {"providers": conversation.providers, "client": conversation.client, "events": events},
            default=str,
        )

    texts = {
        "logs": caplog.text + "\n".join(r.getMessage() for r in caplog.records),
        "caller events": json.dumps(call.events),
        "database": await stored(),
        "reports": "\n".join(
            p.read_text(errors="replace") for p in reports_dir.rglob("*") if p.is_file()
        ),
    }
    assert texts["reports"] and texts["database"]  # the transcript and rows were written
    assert len(caplog.records) > 50  # DEBUG logging of the SDKs and the loop was on
    for where, text in texts.items():
        assert DG_SENTINEL not in text, where
        assert EL_SENTINEL not in text, where
