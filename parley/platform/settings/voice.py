"""Voice runtime settings: where reports and recordings go, limits of the caller socket."""

from __future__ import annotations

from pathlib import Path

from parley.platform.env import VAR_DIR, env

#: Per-call JSONL transcripts and latency reports, per-agent day reports (docs/reports.md).
PARLEY_REPORTS_DIR = Path(env.str("PARLEY_REPORTS_DIR", default=str(VAR_DIR / "reports")))
#: Stereo call recordings (docs/conversations.md); each agent sets how long they are kept.
PARLEY_RECORDINGS_DIR = Path(env.str("PARLEY_RECORDINGS_DIR", default=str(VAR_DIR / "recordings")))
#: Bulk exports (docs/reports.md).
PARLEY_EXPORTS_DIR = Path(env.str("PARLEY_EXPORTS_DIR", default=str(VAR_DIR / "exports")))
# Limits of the caller socket (docs/protocol.md, "Limits"): exceeding one ends the call with
# a fatal error event, a close code and the reason in the Conversation's record.
#: Largest binary frame accepted from a caller: 1 s of 16 kHz PCM16 (the protocol asks for
#: 20 ms = 640 bytes).
PARLEY_MAX_FRAME_BYTES = env.int("PARLEY_MAX_FRAME_BYTES", default=32_000)
#: Largest JSON control message (bytes): a typed turn is at most 2 000 characters.
PARLEY_MAX_CONTROL_BYTES = env.int("PARLEY_MAX_CONTROL_BYTES", default=16_384)
#: Sustained rate of caller messages (binary frames and control messages, per second): 20 ms
#: frames are 50/s, so this allows twice real time.
PARLEY_MAX_FRAMES_PER_S = env.float("PARLEY_MAX_FRAMES_PER_S", default=100.0)
#: Messages a caller may send above that rate at once (a token bucket's depth): a widget
#: catching up after a network stall sends its backlog in a burst (250 frames: 5 s of audio).
PARLEY_FRAME_BURST = env.int("PARLEY_FRAME_BURST", default=250)
#: How long the session waits for the STT final after end of speech before giving up (ms).
PARLEY_STT_FINAL_TIMEOUT_MS = env.int("PARLEY_STT_FINAL_TIMEOUT_MS", default=3_000)
#: Seconds of agent audio sent ahead of real time (the widget's jitter buffer absorbs it).
PARLEY_AUDIO_LEAD_MS = env.int("PARLEY_AUDIO_LEAD_MS", default=120)
#: Tool-call result wait when Celery runs a real worker (s).
PARLEY_TOOL_TIMEOUT_S = env.float("PARLEY_TOOL_TIMEOUT_S", default=20.0)
#: How long the agent waits for the caller's answer to a tool confirmation question, from
#: the end of the question, before the tool call is declined (s; docs/protocol.md, "Tool
#: confirmation"). The same for every agent.
PARLEY_CONFIRMATION_TIMEOUT_S = env.float("PARLEY_CONFIRMATION_TIMEOUT_S", default=30.0)
#: Seconds between heartbeats of a server's live calls (Conversation.heartbeat_at); a call
#: whose heartbeat is older than PARLEY_HEARTBEAT_STALE_S is ended ``aborted`` by the recovery
#: task (docs/operations.md).
PARLEY_HEARTBEAT_INTERVAL_S = env.float("PARLEY_HEARTBEAT_INTERVAL_S", default=10.0)
PARLEY_HEARTBEAT_STALE_S = env.float(
    "PARLEY_HEARTBEAT_STALE_S", default=3 * PARLEY_HEARTBEAT_INTERVAL_S
)
#: Seconds a draining server (SIGTERM) gives its live calls before ending them politely.
PARLEY_DRAIN_GRACE_S = env.float("PARLEY_DRAIN_GRACE_S", default=30.0)
#: What the agent says when the server ends a call (draining).
PARLEY_SHUTDOWN_GOODBYE = env.str(
    "PARLEY_SHUTDOWN_GOODBYE",
    default="Sorry, I have to end our call now. Please call back. Goodbye.",
)
#: What the agent says when a call reaches its agent's longest call (``max_call_duration_s``),
#: before the call ends with ``call_duration_exceeded`` (docs/protocol.md, "Limits").
PARLEY_TIME_LIMIT_GOODBYE = env.str(
    "PARLEY_TIME_LIMIT_GOODBYE",
    default="We've reached the time limit for this call. Thank you for calling, goodbye.",
)

# Cloud providers (docs/providers.md). URLs are settings so tests and on-premises proxies can
# redirect the SDKs; keys are read from the environment variables named here at call start,
# never stored in the database or logged.
DEEPGRAM_URL = env.str("DEEPGRAM_URL", default="wss://api.deepgram.com")
DEEPGRAM_API_KEY_ENV = env.str("DEEPGRAM_API_KEY_ENV", default="DEEPGRAM_API_KEY")
#: Seconds without caller audio after which a KeepAlive goes to Deepgram (it closes at 10 s).
DEEPGRAM_KEEPALIVE_S = env.float("DEEPGRAM_KEEPALIVE_S", default=4.0)
#: Consecutive reconnection attempts after a dropped Deepgram connection.
DEEPGRAM_MAX_RECONNECTS = env.int("DEEPGRAM_MAX_RECONNECTS", default=3)
ELEVENLABS_URL = env.str("ELEVENLABS_URL", default="https://api.elevenlabs.io")
ELEVENLABS_API_KEY_ENV = env.str("ELEVENLABS_API_KEY_ENV", default="ELEVENLABS_API_KEY")
ELEVENLABS_TIMEOUT_S = env.float("ELEVENLABS_TIMEOUT_S", default=10.0)
#: A sentence whose first audio byte (or next chunk) takes longer is spoken by the offline
#: engine instead (docs/providers.md).
ELEVENLABS_FIRST_BYTE_TIMEOUT_MS = env.float("ELEVENLABS_FIRST_BYTE_TIMEOUT_MS", default=2000.0)
ELEVENLABS_STALL_TIMEOUT_MS = env.float("ELEVENLABS_STALL_TIMEOUT_MS", default=2000.0)
#: Whether a call may pick other providers than its agent's (``?stt=deepgram&tts=elevenlabs``
#: on the caller socket, ``manage.py call --stt/--tts``). Staff users always may.
PARLEY_PROVIDER_OVERRIDES = env.bool("PARLEY_PROVIDER_OVERRIDES", default=True)
#: Where evaluation jobs in voice mode reach the caller WebSocket (the Daphne server's base
#: URL). ``manage.py evaluate`` serves Parley in-process instead unless given ``--url``.
PARLEY_CALL_URL = env.str("PARLEY_CALL_URL", default="ws://127.0.0.1:8000")

# The LLM fleet (docs/fleet.md): health state machine and how often routers and checks run.
FLEET_FAILURE_THRESHOLD = env.int("FLEET_FAILURE_THRESHOLD", default=3)
FLEET_COOLDOWN_S = env.float("FLEET_COOLDOWN_S", default=10.0)
FLEET_MAX_COOLDOWN_S = env.float("FLEET_MAX_COOLDOWN_S", default=120.0)
FLEET_DOWN_AFTER = env.int("FLEET_DOWN_AFTER", default=12)
FLEET_REFRESH_S = env.float("FLEET_REFRESH_S", default=2.0)
FLEET_HEALTH_TIMEOUT_S = env.float("FLEET_HEALTH_TIMEOUT_S", default=2.0)
#: When set, ``/metrics`` requires ``Authorization: Bearer <token>``.
PARLEY_METRICS_TOKEN = env.str("PARLEY_METRICS_TOKEN", default="")

# Benchmarks only (bench/concurrency.py): every call's STT and TTS become the simulators of
# parley/testing/speech_sim.py — scripted transcripts and a tone, no model, no vendor — so a
# load test measures the platform. Off by default; the production settings force it off.
PARLEY_SIMULATED_SPEECH = env.bool("PARLEY_SIMULATED_SPEECH", default=False)
#: The simulated STT's final transcript (empty: speech_sim.DEFAULT_TRANSCRIPT), and its delay
#: after the platform's end of speech (ms).
PARLEY_SIMULATED_TRANSCRIPT = env.str("PARLEY_SIMULATED_TRANSCRIPT", default="")
PARLEY_SIMULATED_STT_DELAY_MS = env.float("PARLEY_SIMULATED_STT_DELAY_MS", default=0.0)
#: The simulated TTS's time to first audio (ms).
PARLEY_SIMULATED_TTS_TTFB_MS = env.float("PARLEY_SIMULATED_TTS_TTFB_MS", default=0.0)
