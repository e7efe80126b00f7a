"""Builds a call's providers from the agent configuration: the one place engines are chosen.

:class:`CallConfig` is a plain snapshot of everything a call needs, read from the database
once at connect time, so the voice loop never touches the ORM.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from parley.agents.models import Agent, PromptVersion
from parley.agents.voice.llm.base import LLM
from parley.agents.voice.llm.openai_compat import OpenAICompatLLM, OpenAICompatSettings
from parley.agents.voice.stt.base import STT
from parley.agents.voice.stt.pocketsphinx import PocketsphinxSettings, PocketsphinxSTT
from parley.agents.voice.tts.base import TTS
from parley.agents.voice.tts.espeak import EspeakSettings, EspeakTTS
from parley.agents.voice.vad import StreamingVAD, VADSettings
from parley.platform.errors import ApplicationError
from parley.platform.fleet.models import ModelPool


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
    pool_kind: str
    llm_base_url: str
    llm_model: str
    llm_api_key_env: str
    llm_temperature: float
    llm_max_tokens: int
    llm_timeout_s: float
    sim_ttft_ms: int
    sim_itl_ms: int


@dataclass(frozen=True)
class Providers:
    vad: StreamingVAD
    stt: STT
    llm: LLM
    tts: TTS


def call_config_build(*, agent: Agent, prompt: PromptVersion | None) -> CallConfig:
    """Snapshot the agent for one call (runs in a sync context: touches the ORM)."""
    tools = tuple(t.as_openai_tool() for t in agent.tools.order_by("name"))
    pool = agent.model_pool
    policy = agent.scenario.policy.strip()
    system_prompt = (prompt.text if prompt else "").strip()
    if policy and policy not in system_prompt:
        system_prompt = f"{system_prompt}\n\n{policy}".strip()
    return CallConfig(
        agent_slug=agent.slug,
        scenario=agent.scenario.domain,
        prompt_version_id=prompt.id if prompt else None,
        system_prompt=system_prompt,
        greeting=agent.greeting,
        tools=tools,
        tool_names=tuple(t["function"]["name"] for t in tools),
        max_tool_steps=agent.max_tool_steps,
        vad=VADSettings(
            threshold=agent.vad_threshold,
            min_speech_ms=agent.min_speech_ms,
            min_silence_ms=agent.endpointing_ms,
            pre_roll_ms=agent.pre_roll_ms,
            max_utterance_ms=agent.max_utterance_ms,
        ),
        stt_provider=agent.stt_provider,
        tts_provider=agent.tts_provider,
        tts_voice=agent.tts_voice,
        tts_rate_wpm=agent.tts_rate_wpm,
        pool_kind=pool.kind,
        llm_base_url=pool.base_url,
        llm_model=pool.model,
        llm_api_key_env=pool.api_key_env,
        llm_temperature=pool.temperature,
        llm_max_tokens=pool.max_tokens,
        llm_timeout_s=pool.timeout_s,
        sim_ttft_ms=pool.sim_ttft_ms,
        sim_itl_ms=pool.sim_itl_ms,
    )


async def providers_build(config: CallConfig) -> Providers:
    """Instantiate the engines a call uses. Raises ``ApplicationError`` for unknown ones."""
    if config.stt_provider != Agent.STTProvider.POCKETSPHINX:
        raise ApplicationError(f"unknown STT provider {config.stt_provider!r}")
    if config.tts_provider != Agent.TTSProvider.ESPEAK:
        raise ApplicationError(f"unknown TTS provider {config.tts_provider!r}")
    stt = PocketsphinxSTT(settings=PocketsphinxSettings(pre_roll_ms=config.vad.pre_roll_ms))
    tts = EspeakTTS(settings=EspeakSettings(voice=config.tts_voice, rate_wpm=config.tts_rate_wpm))
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
        api_key = os.environ.get(config.llm_api_key_env, "") if config.llm_api_key_env else ""
    llm = OpenAICompatLLM(
        OpenAICompatSettings(
            base_url=base_url,
            api_key=api_key or "not-needed",
            model=config.llm_model,
            temperature=config.llm_temperature,
            max_tokens=config.llm_max_tokens,
            timeout_s=config.llm_timeout_s,
        )
    )
    return Providers(vad=StreamingVAD(config.vad), stt=stt, llm=llm, tts=tts)
