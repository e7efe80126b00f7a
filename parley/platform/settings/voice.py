"""Voice runtime settings: where reports and recordings go, limits of the caller socket."""

from __future__ import annotations

from pathlib import Path

from parley.platform.env import BASE_DIR, env

PARLEY_REPORTS_DIR = Path(env.str("PARLEY_REPORTS_DIR", default=str(BASE_DIR / "var" / "reports")))
#: Largest binary frame accepted from a caller: 1 s of 16 kHz PCM16. Bigger frames get an
#: error event (the protocol asks for 20 ms = 640 bytes).
PARLEY_MAX_FRAME_BYTES = env.int("PARLEY_MAX_FRAME_BYTES", default=32_000)
#: How long the session waits for the STT final after end of speech before giving up (ms).
PARLEY_STT_FINAL_TIMEOUT_MS = env.int("PARLEY_STT_FINAL_TIMEOUT_MS", default=3_000)
#: Seconds of agent audio sent ahead of real time (the widget's jitter buffer absorbs it).
PARLEY_AUDIO_LEAD_MS = env.int("PARLEY_AUDIO_LEAD_MS", default=120)
#: Tool-call result wait when Celery runs a real worker (s).
PARLEY_TOOL_TIMEOUT_S = env.float("PARLEY_TOOL_TIMEOUT_S", default=20.0)
