"""Builds a call's providers from the agent configuration: the one place engines are chosen.

:class:`CallConfig` is a plain snapshot of everything a call needs, read from the database
once at connect time, so the voice loop never touches the ORM. :func:`provider_keys_check`
runs before the call is accepted, so an agent whose cloud provider has no API key is refused
at start with a message naming the environment variable, never mid-call. Keys are read from
the environment at call start (the variable names are settings) and never stored or logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from parley.agents.models import Agent, PromptVersion
from parley.agents.voice.llm.base import LLM
from parley.agents.voice.llm.openai_compat import OpenAICompatLLM, OpenAICompatSettings
from parley.agents.voice.stt.base import STT
from parley.agents.voice.stt.deepgram import DeepgramSettings, DeepgramSTT
from parley.agents.voice.stt.pocketsphinx import PocketsphinxSettings, PocketsphinxSTT
from parley.agents.voice.tts.base import TTS
from parley.agents.voice.tts.elevenlabs import ElevenLabsSettings, ElevenLabsTTS
from parley.agents.voice.tts.espeak import EspeakSettings, EspeakTTS
from parley.agents.voice.turns import TurnTakingSettings
from parley.agents.voice.vad import StreamingVAD, VADSettings
from parley.platform.errors import ApplicationError
from parley.platform.fleet.models import ModelPool
from parley.platform.log_redaction import secret_env_read


@dataclass(frozen=True)
class CallConfig:
    agent_slug: str
    scenario: str
    prompt_version_id: int | None
    system_prompt: str
    greeting: str
    tools: tuple[dict[str, Any], ...]
    tool_names: tuple[str, ...]
    max_tool_steps: int
    vad: VADSettings
    stt_provider: str
    tts_provider: str
    tts_voice: str
    tts_rate_wpm: int
    deepgram_model: str
    deepgram_language: str
    deepgram_endpointing_ms: int | None
    deepgram_utterance_end_ms: int | None
    deepgram_smart_format: bool
    stt_keyterms: tuple[str, ...]
    elevenlabs_voice_id: str
    elevenlabs_model_id: str
    elevenlabs_latency: int
    pool_kind: str
    pool_id: int
    pool_slug: str
    #: The pool has LLM servers: calls go through the fleet router (else ``llm_base_url``).
    pool_has_servers: bool
    ttft_deadline_ms: int
    stall_timeout_ms: int
    max_attempts: int
    llm_base_url: str
    llm_model: str
    llm_api_key_env: str
    llm_temperature: float
    llm_max_tokens: int
    llm_timeout_s: float
    sim_ttft_ms: int
    sim_itl_ms: int
    #: Days the call's recording is kept; 0: the call is not recorded.
    recording_retention_days: int = 0
    #: End of turn, barge-in, backchannels, filler (``echo_gate`` off: see ``echo_gate_mode``).
    turn_taking: TurnTakingSettings = field(default_factory=TurnTakingSettings)
    #: ``auto`` (gate when the caller's client reports no echo cancellation), ``on``, ``off``.
    echo_gate_mode: str = "auto"
    #: Tools the caller must confirm before they run (side-effecting ones, when the agent's
    #: ``confirm_side_effects`` is on).
    confirm_tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class Providers:
    vad: StreamingVAD
    stt: STT
    llm: LLM
    tts: TTS
    #: Speaks the rest of a reply when a cloud TTS fails (``None`` for the offline engine).
    fallback_tts: TTS | None = None


def call_config_build(
    *,
    agent: Agent,
    prompt: PromptVersion | None,
    stt_provider: str | None = None,
    tts_provider: str | None = None,
) -> CallConfig:
    """Snapshot the agent for one call (runs in a sync context: touches the ORM).

    ``stt_provider``/``tts_provider`` override the agent's choice for this call. Raises
    ``ApplicationError`` (code ``bad_provider``) for a provider Parley does not know.
    """
    from parley.tools.registry import scenario_keyterms

    stt_provider = stt_provider or agent.stt_provider
    tts_provider = tts_provider or agent.tts_provider
    if stt_provider not in Agent.STTProvider.values:
        raise ApplicationError(
            f"unknown STT provider {stt_provider!r} (known: {', '.join(Agent.STTProvider.values)})",
            extra={"code": "bad_provider"},
        )
    if tts_provider not in Agent.TTSProvider.values:
        raise ApplicationError(
            f"unknown TTS provider {tts_provider!r} (known: {', '.join(Agent.TTSProvider.values)})",
            extra={"code": "bad_provider"},
        )
    keyterms: tuple[str, ...] = ()
    if stt_provider == Agent.STTProvider.DEEPGRAM:
        keyterms = tuple(
            scenario_keyterms(scenario=agent.scenario.domain, extra=agent.stt_keyterms.splitlines())
        )
    schemas = list(agent.tools.order_by("name"))
    tools = tuple(t.as_openai_tool() for t in schemas)
    confirm_tools = tuple(
        t.name for t in schemas if t.side_effecting and agent.confirm_side_effects
    )
    pool = agent.model_pool
    policy = agent.scenario.policy.strip()
    system_prompt = (prompt.text if prompt else "").strip()
    if policy and policy not in system_prompt:
        system_prompt = f"{system_prompt}\n\n{policy}".strip()
    pause_ms = min(agent.pause_ms, agent.endpointing_ms)
    turn_taking = TurnTakingSettings(
        endpointing_ms=agent.endpointing_ms,
        unfinished_endpointing_ms=max(agent.unfinished_endpointing_ms, agent.endpointing_ms),
        pause_ms=pause_ms,
        stt_end_of_turn=agent.stt_end_of_turn,
        speculative_start=agent.speculative_start,
        barge_in=agent.barge_in,
        backchannels=agent.backchannel_list,
        false_interruption_ms=agent.false_interruption_ms,
        filler_after_ms=agent.filler_after_ms,
        filler_text=agent.filler_text.strip(),
    )
    return CallConfig(
        turn_taking=turn_taking,
        echo_gate_mode=agent.echo_gate,
        agent_slug=agent.slug,
        recording_retention_days=agent.recording_retention_days,
        scenario=agent.scenario.domain,
        prompt_version_id=prompt.id if prompt else None,
        system_prompt=system_prompt,
        greeting=agent.greeting,
        tools=tools,
        tool_names=tuple(t["function"]["name"] for t in tools),
        max_tool_steps=agent.max_tool_steps,
        confirm_tools=confirm_tools,
        vad=VADSettings(
            threshold=agent.vad_threshold,
            min_speech_ms=agent.min_speech_ms,
            # The VAD's speech end is the pause (the final transcript is asked for there);
            # the session ends the turn after endpointing_ms.
            min_silence_ms=pause_ms,
            pre_roll_ms=agent.pre_roll_ms,
            max_utterance_ms=agent.max_utterance_ms,
        ),
        stt_provider=stt_provider,
        tts_provider=tts_provider,
        tts_voice=agent.tts_voice,
        tts_rate_wpm=agent.tts_rate_wpm,
        deepgram_model=agent.deepgram_model,
        deepgram_language=agent.deepgram_language,
        deepgram_endpointing_ms=agent.deepgram_endpointing_ms or None,
        deepgram_utterance_end_ms=agent.deepgram_utterance_end_ms or None,
        deepgram_smart_format=agent.deepgram_smart_format,
        stt_keyterms=keyterms,
        elevenlabs_voice_id=agent.elevenlabs_voice_id,
        elevenlabs_model_id=agent.elevenlabs_model_id,
        elevenlabs_latency=agent.elevenlabs_latency,
        pool_kind=pool.kind,
        pool_id=pool.pk,
        pool_slug=pool.slug,
        pool_has_servers=pool.servers.filter(enabled=True).exists(),
        ttft_deadline_ms=pool.ttft_deadline_ms,
        stall_timeout_ms=pool.stall_timeout_ms,
        max_attempts=pool.max_attempts,
        llm_base_url=pool.base_url,
        llm_model=pool.model,
        llm_api_key_env=pool.api_key_env,
        llm_temperature=pool.temperature,
        llm_max_tokens=pool.max_tokens,
        llm_timeout_s=pool.timeout_s,
        sim_ttft_ms=pool.sim_ttft_ms,
        sim_itl_ms=pool.sim_itl_ms,
    )


@dataclass(frozen=True)
class ProviderKeys:
    """API keys for one call, read from the environment. Never logged (``repr=False``)."""

    deepgram: str = field(default="", repr=False)
    elevenlabs: str = field(default="", repr=False)
    llm: str = field(default="", repr=False)


def _key_from_env(variable: str, *, needed_by: str, agent: str) -> str:
    key = secret_env_read(variable)
    if not key:
        raise ApplicationError(
            f"agent {agent!r} uses {needed_by}, but the environment variable {variable!r} "
            "holding its API key is not set on the server (see docs/providers.md)",
            extra={"code": "provider_not_configured"},
        )
    return key


def provider_keys_check(config: CallConfig, *, text_only: bool = False) -> ProviderKeys:
    """Read the API keys the call's providers need (only the LLM's for a ``text_only`` call).
    Raises ``ApplicationError`` (code ``provider_not_configured``) naming the missing
    environment variable."""
    deepgram = elevenlabs = llm = ""
    if config.stt_provider == Agent.STTProvider.DEEPGRAM and not text_only:
        deepgram = _key_from_env(
            settings.DEEPGRAM_API_KEY_ENV,
            needed_by="Deepgram speech-to-text",
            agent=config.agent_slug,
        )
    if config.tts_provider == Agent.TTSProvider.ELEVENLABS and not text_only:
        elevenlabs = _key_from_env(
            settings.ELEVENLABS_API_KEY_ENV,
            needed_by="ElevenLabs text-to-speech",
            agent=config.agent_slug,
        )
    if (
        config.pool_kind != ModelPool.Kind.SIMULATOR
        and config.llm_api_key_env
        and not config.pool_has_servers  # fleet servers read their own keys
    ):
        llm = _key_from_env(
            config.llm_api_key_env,
            needed_by=f"the LLM endpoint {config.llm_base_url}",
            agent=config.agent_slug,
        )
    return ProviderKeys(deepgram=deepgram, elevenlabs=elevenlabs, llm=llm)


def _stt_build(config: CallConfig, keys: ProviderKeys) -> STT:
    if settings.PARLEY_SIMULATED_SPEECH:  # benchmarks only (bench/concurrency.py)
        from parley.testing import speech_sim

        transcript = settings.PARLEY_SIMULATED_TRANSCRIPT or speech_sim.DEFAULT_TRANSCRIPT
        return speech_sim.SimulatedSTT(
            speech_sim.SimulatedSTTSettings(
                transcripts=(transcript,), final_delay_ms=settings.PARLEY_SIMULATED_STT_DELAY_MS
            )
        )
    if config.stt_provider == Agent.STTProvider.DEEPGRAM:
        return DeepgramSTT(
            DeepgramSettings(
                api_key=keys.deepgram,
                url=settings.DEEPGRAM_URL,
                model=config.deepgram_model,
                language=config.deepgram_language,
                endpointing_ms=config.deepgram_endpointing_ms,
                utterance_end_ms=config.deepgram_utterance_end_ms,
                smart_format=config.deepgram_smart_format,
                keyterms=config.stt_keyterms,
                keepalive_interval_s=settings.DEEPGRAM_KEEPALIVE_S,
                max_reconnects=settings.DEEPGRAM_MAX_RECONNECTS,
            )
        )
    return PocketsphinxSTT(settings=PocketsphinxSettings(pre_roll_ms=config.vad.pre_roll_ms))


def _tts_build(config: CallConfig, keys: ProviderKeys) -> tuple[TTS, TTS | None]:
    if settings.PARLEY_SIMULATED_SPEECH:  # benchmarks only (bench/concurrency.py)
        from parley.testing.speech_sim import SimulatedTTS, SimulatedTTSSettings

        tts = SimulatedTTS(SimulatedTTSSettings(ttfb_ms=settings.PARLEY_SIMULATED_TTS_TTFB_MS))
        return tts, None
    offline = EspeakTTS(
        settings=EspeakSettings(voice=config.tts_voice, rate_wpm=config.tts_rate_wpm)
    )
    if config.tts_provider == Agent.TTSProvider.ELEVENLABS:
        cloud = ElevenLabsTTS(
            ElevenLabsSettings(
                api_key=keys.elevenlabs,
                url=settings.ELEVENLABS_URL,
                voice_id=config.elevenlabs_voice_id,
                model_id=config.elevenlabs_model_id,
                optimize_streaming_latency=config.elevenlabs_latency,
                timeout_s=settings.ELEVENLABS_TIMEOUT_S,
                first_byte_timeout_ms=settings.ELEVENLABS_FIRST_BYTE_TIMEOUT_MS,
                stall_timeout_ms=settings.ELEVENLABS_STALL_TIMEOUT_MS,
            )
        )
        return cloud, offline
    return offline, None


async def providers_build(config: CallConfig, *, text_only: bool = False) -> Providers:
    """Instantiate the engines a call uses. Raises ``ApplicationError`` for unknown providers
    and missing keys (before anything is connected). A ``text_only`` call gets the offline
    STT and TTS objects, which it never opens, and needs no speech vendor's key."""
    keys = provider_keys_check(config, text_only=text_only)
    speech = config
    if text_only:
        speech = dataclasses.replace(
            config,
            stt_provider=Agent.STTProvider.POCKETSPHINX,
            tts_provider=Agent.TTSProvider.ESPEAK,
        )

    def speech_build() -> tuple[STT, tuple[TTS, TTS | None]]:
        return _stt_build(speech, keys), _tts_build(speech, keys)

    # Off the event loop, like the LLM client below: a vendor SDK's client loads the CA
    # bundle into an SSL context (ElevenLabs: ~30 ms of CPU, measured) that would stall
    # every other call's audio.
    stt, (tts, fallback_tts) = await asyncio.to_thread(speech_build)
    if config.pool_has_servers:
        return Providers(
            vad=StreamingVAD(config.vad),
            stt=stt,
            llm=_fleet_llm_build(config),
            tts=tts,
            fallback_tts=fallback_tts,
        )
    if config.pool_kind == ModelPool.Kind.SIMULATOR:
        from parley.agents.simulator_runtime import simulator_base_url

        base_url = await asyncio.to_thread(
            simulator_base_url, ttft_ms=config.sim_ttft_ms, itl_ms=config.sim_itl_ms
        )
        api_key = "simulator"
    else:
        if not config.llm_base_url:
            raise ApplicationError("the agent's model pool has no base URL")
        base_url = config.llm_base_url
        api_key = keys.llm
    # Off the event loop: the client's SSL context loads the CA bundle, ~40 ms of CPU per
    # call (measured), which would stall every other call's audio on the loop.
    llm = await asyncio.to_thread(
        OpenAICompatLLM,
        OpenAICompatSettings(
            base_url=base_url,
            api_key=api_key or "not-needed",
            model=config.llm_model,
            temperature=config.llm_temperature,
            max_tokens=config.llm_max_tokens,
            timeout_s=config.llm_timeout_s,
        ),
    )
    return Providers(
        vad=StreamingVAD(config.vad), stt=stt, llm=llm, tts=tts, fallback_tts=fallback_tts
    )


def _fleet_llm_build(config: CallConfig) -> LLM:
    """The call's LLM over the pool's servers (routing, failover: docs/fleet.md)."""
    from parley.agents.voice.llm.fleet import FleetLLM, FleetSettings
    from parley.platform.fleet.services import pool_router, router_refresh

    pool_id = config.pool_id

    async def refresh() -> None:
        await router_refresh(pool_id)

    return FleetLLM(
        settings=FleetSettings(
            pool=config.pool_slug,
            model=config.llm_model,
            temperature=config.llm_temperature,
            max_tokens=config.llm_max_tokens,
            timeout_s=config.llm_timeout_s,
            ttft_deadline_ms=config.ttft_deadline_ms,
            stall_timeout_ms=config.stall_timeout_ms,
            max_attempts=config.max_attempts,
        ),
        router=pool_router(pool_id, pool_slug=config.pool_slug),
        refresh=refresh,
    )
