"""Choosing a call's engines from the agent: overrides, key checks, settings passed through."""

from __future__ import annotations

import pytest

from parley.agents.models import Agent
from parley.agents.providers import call_config_build, provider_keys_check, providers_build
from parley.agents.selectors import prompt_active
from parley.agents.voice.stt.deepgram import DeepgramSTT
from parley.agents.voice.tts.elevenlabs import ElevenLabsTTS
from parley.agents.voice.tts.espeak import EspeakTTS
from parley.platform.errors import ApplicationError
from parley.platform.fleet.models import ModelPool

pytestmark = pytest.mark.django_db


def config_for(agent: Agent, **overrides: str):  # noqa: ANN201
    return call_config_build(agent=agent, prompt=prompt_active(agent=agent), **overrides)


def test_the_offline_defaults_need_no_key(hospital_agent: Agent, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    config = config_for(hospital_agent)
    assert (config.stt_provider, config.tts_provider) == ("pocketsphinx", "espeak-ng")
    assert config.stt_keyterms == ()  # only computed for Deepgram
    provider_keys_check(config)  # no exception


@pytest.mark.django_db(transaction=True)
async def test_cloud_providers_get_the_agents_settings_the_urls_and_the_keys(
    hospital_agent: Agent,
    settings,
    monkeypatch,  # noqa: ANN001
) -> None:
    from channels.db import database_sync_to_async as sync_to_async

    settings.DEEPGRAM_URL = "ws://127.0.0.1:9/dg"
    settings.ELEVENLABS_URL = "http://127.0.0.1:9/el"
    settings.DEEPGRAM_API_KEY_ENV = "ACME_DG_KEY"
    monkeypatch.setenv("ACME_DG_KEY", "dg-secret")
    monkeypatch.setenv("ELEVENLABS_API_KEY", "el-secret")
    hospital_agent.deepgram_model = "nova-2-medical"
    hospital_agent.deepgram_endpointing_ms = 0  # off
    hospital_agent.stt_keyterms = "Parley\n\n  Sarah   Johnson \nparley"
    hospital_agent.elevenlabs_voice_id = "voice-123"
    hospital_agent.elevenlabs_latency = 4
    await sync_to_async(hospital_agent.save)()
    config = await sync_to_async(config_for)(
        hospital_agent, stt_provider="deepgram", tts_provider="elevenlabs"
    )
    # The agent's terms first, then the scenario's names, without duplicates.
    assert config.stt_keyterms[:2] == ("Parley", "Sarah Johnson")
    assert len({t.lower() for t in config.stt_keyterms}) == len(config.stt_keyterms)
    assert "Alice Johnson" in config.stt_keyterms  # a patient of the hospital seed

    providers = await providers_build(config)
    try:
        assert isinstance(providers.stt, DeepgramSTT)
        dg = providers.stt.settings
        assert (dg.api_key, dg.url, dg.model) == (
            "dg-secret",
            "ws://127.0.0.1:9/dg",
            "nova-2-medical",
        )
        assert dg.endpointing_ms is None and dg.utterance_end_ms == 1000
        assert isinstance(providers.tts, ElevenLabsTTS)
        el = providers.tts.settings
        assert (el.api_key, el.url, el.voice_id) == (
            "el-secret",
            "http://127.0.0.1:9/el",
            "voice-123",
        )
        assert el.optimize_streaming_latency == 4
        assert isinstance(providers.fallback_tts, EspeakTTS)
    finally:
        await providers.tts.aclose()
        await providers.llm.aclose()


def test_an_unknown_provider_is_refused(hospital_agent: Agent) -> None:
    with pytest.raises(ApplicationError, match="unknown STT provider 'whisper'") as info:
        config_for(hospital_agent, stt_provider="whisper")
    assert info.value.extra["code"] == "bad_provider"


@pytest.mark.parametrize(
    ("stt", "tts", "variable"),
    [("deepgram", "", "DEEPGRAM_API_KEY"), ("", "elevenlabs", "ELEVENLABS_API_KEY")],
)
def test_a_missing_vendor_key_names_its_variable(
    hospital_agent: Agent,
    monkeypatch,
    stt: str,
    tts: str,
    variable: str,  # noqa: ANN001
) -> None:
    monkeypatch.delenv(variable, raising=False)
    config = config_for(hospital_agent, stt_provider=stt, tts_provider=tts)
    with pytest.raises(ApplicationError, match=variable) as info:
        provider_keys_check(config)
    assert info.value.extra["code"] == "provider_not_configured"


def test_a_hosted_llm_pool_reads_its_key_from_the_named_variable(
    hospital_agent: Agent,
    monkeypatch,  # noqa: ANN001
) -> None:
    hospital_agent.model_pool = ModelPool.objects.create(
        slug="azure",
        name="Azure OpenAI",
        kind=ModelPool.Kind.OPENAI_COMPATIBLE,
        model="gpt-4o-mini",
        base_url="https://acme.openai.azure.com/openai/v1/",
        api_key_env="ACME_AZURE_KEY",
    )
    hospital_agent.save()
    monkeypatch.delenv("ACME_AZURE_KEY", raising=False)
    config = config_for(hospital_agent)
    with pytest.raises(ApplicationError, match="ACME_AZURE_KEY"):
        provider_keys_check(config)
    monkeypatch.setenv("ACME_AZURE_KEY", "az-secret")
    assert provider_keys_check(config).llm == "az-secret"
    assert "az-secret" not in repr(provider_keys_check(config))


def test_the_admin_form_rejects_a_too_short_utterance_end(hospital_agent: Agent) -> None:
    from django.core.exceptions import ValidationError

    hospital_agent.deepgram_utterance_end_ms = 500
    with pytest.raises(ValidationError, match="1000"):
        hospital_agent.full_clean()
