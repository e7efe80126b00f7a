"""Concurrent voice calls against one Daphne process: added TTFA, loop lag, late frames, CPU.

    python bench/concurrency.py [--calls 25,50,100,200] [--turns 3] [--json FILE]

What runs, all on this machine over loopback:

- **server**: one Daphne process serving Parley's ASGI application (``bench/concurrency.py
  --serve``: ``daphne.server.Server`` exactly as the ``daphne`` command builds it, plus a
  probe that reports the event loop's lag), with the benchmark-only setting
  ``PARLEY_SIMULATED_SPEECH=1``: real Silero VAD, simulated STT and TTS
  (``parley/testing/speech_sim.py``, no delay), ``DJANGO_DEBUG=false``, the PostgreSQL
  database ``parleyc`` (created and migrated if missing; every event is persisted as in
  production; PostgreSQL's own CPU stays around 1 % of a core, so SQLite, which would write
  inside the server process, would not make the measurement cleaner), in-memory channel
  layer and cache, Celery not eager (the end-of-call report jobs are queued in memory and
  dropped: a worker's job, not Daphne's), calls not recorded (``--record`` records them).
- **LLM**: the LLM simulator in its own process (``manage.py llm_simulator``, TTFT 0, ITL 0),
  reached by the agent's model pool (kind ``openai``, ``base_url``) over HTTP like vLLM;
  in its own process it takes no CPU time from Daphne's event loop. No tools: the
  simulator's echo policy answers "You said: ...".
- **callers**: a load-generator process (``--load``) speaking the caller protocol of
  docs/protocol.md on raw sockets with precomputed frames (masked with a fixed key): each
  call streams 20 ms PCM16 frames paced in real time from a shared 20 ms clock (calls spread
  over 20 phases 1 ms apart), silence between utterances, utterances from
  tests/fixtures/audio/speech (clips the agent's VAD hears as one utterance), and answers
  WebSocket pings. It is cheap so as not to starve the server; its CPU is reported.

Per N (``--calls``): N calls connect (``--connect-rate``/s) and stream silence; once all
are connected each waits a random 0.5-3 s and then takes turns: an utterance, silence until
the agent's reply has ended (``turn.ended``), a pause of 0.3-1 s, the next utterance. Every
call takes at least ``--turns`` turns and keeps talking until all have, so the load stays at
N; the measurement window runs from "all connected" to "all took their turns". Before the
first N, 2 calls of 1 turn warm the server up (a process's first call and first LLM request
pay one-time costs); the next N starts once the server has worked off the last one.

Figures per N (turns whose end of speech falls in the window):

- **added TTFA** (client): the TTFA the caller measures — from the end of its speech
  (the ``vad.speech_end`` position mapped onto the client's send clock) to the arrival of
  the reply's first audio frame — minus the agent's end-of-turn silence
  (``Agent.endpointing_ms``, 500 ms) and the simulated provider delays (0). It is what the
  platform adds: socket and queueing delays both ways, the VAD, the end-of-turn timer, the
  LLM round trip to the simulator, the session and the event loop.
- **server** components from the session's ``turn.metrics``: ``ttfa_ms - endpointing_ms``
  (end of turn decided → first agent frame sent) and ``endpointing_ms - 500`` (end-of-turn
  lateness).
- **loop lag**: how late a 10 ms timer fires in the server's event loop (p95, max).
- **caller frames late**: every 25th frame is followed by a ``ping``; the consumer handles
  a connection's messages in order, so the ``pong`` round trip is the time a caller frame
  waits in the server before it is processed. A frame counts as late when that wait exceeds
  40 ms (two frames: the server is no longer keeping up in real time). TCP does not drop
  frames and the consumer ignores none after ``session.started``; when a connection fails
  before its hang-up, the frames sent after its last answered ping count as dropped. Calls
  still waiting for a reply when the step ends are "unfinished" (the server fell behind).
- **agent underruns**: the client plays each reply from its first frame with no jitter
  buffer; a frame arriving after the previous one finished playing is an underrun.
- CPU (% of one core) and RSS of the server, CPU of the load generator, of the LLM
  simulator and of PostgreSQL, and "other": CPU used on the machine by processes outside
  the benchmark (other work disturbs the measurement).
- In the JSON only: the VAD batcher's mean batch and windows/s, how long each
  ``StreamingVAD.push`` took (the server process wraps the method to time it), database
  commits and connections per second (``pg_stat_database``), the load generator's own
  send lateness, and more percentiles.

Diagnostics: ``--vad-tick-ms`` and ``--event-flush-s`` override the VAD batcher's tick and
the event recorder's gathering time; ``--slow-callback-ms`` runs the server's loop in
asyncio debug mode and logs slow callbacks to ``--server-log``.

Prints a table; ``--json FILE`` writes every figure. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parley.agents.voice.metrics import percentile  # noqa: E402

AGENT_SLUG = "bench-concurrency"
POOL_SLUG = "bench-concurrency-llm"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/parleyc"
SPEECH = ROOT / "tests" / "fixtures" / "audio" / "speech"
FRAME_S = 0.020
FRAME_BYTES = 640  # 20 ms of 16 kHz PCM16
PHASES = 20  # calls send on 20 phases of the 20 ms clock, 1 ms apart
PING_EVERY = 25  # frames
LATE_CALLER_MS = 40.0
#: Utterances used: clips of this length the agent's VAD hears as exactly one utterance.
CLIP_SECONDS = (1.2, 6.0)
REPLY_TIMEOUT_S = 30.0


def _pct(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 1) if values else None


def _max(values: list[float]) -> float | None:
    return round(max(values), 1) if values else None


# ================================================================ server process


def serve(
    port: int,
    *,
    slow_callback_ms: float | None = None,
    vad_tick_ms: float | None = None,
    event_flush_s: float | None = None,
    gc_freeze: bool = False,
) -> None:
    """Daphne on 127.0.0.1:``port`` with Parley's application, as the ``daphne`` command runs
    it, plus a loop-lag probe: one JSON line per second on stdout with every lag sample (ms)
    and the VAD batcher's counters. ``slow_callback_ms``: asyncio debug mode, logging every
    callback that holds the loop longer (diagnosis only: debug mode slows everything)."""
    from daphne.server import Server  # installs Twisted's asyncio reactor: import it first
    from twisted.internet import reactor

    from parley.agents.voice.vad import StreamingVAD, vad_batcher
    from parley.platform.asgi import application

    batcher = vad_batcher()
    if vad_tick_ms is not None:
        batcher.tick_s = vad_tick_ms / 1000
    if event_flush_s is not None:
        from parley.agents.runtime import EventRecorder

        EventRecorder.__init__.__kwdefaults__["flush_interval_s"] = event_flush_s
    # Measure how long each VAD push takes (the session awaits it for every caller frame):
    # a thin wrapper around the method, about 1 µs per call.
    push_ms: list[float] = []
    push = StreamingVAD.push

    async def timed_push(self: StreamingVAD, pcm16: bytes, *, at: float) -> Any:
        started = time.perf_counter()
        try:
            return await push(self, pcm16, at=at)
        finally:
            push_ms.append((time.perf_counter() - started) * 1000)

    StreamingVAD.push = timed_push  # type: ignore[method-assign]

    # Garbage-collector pauses (they stop the loop like any other work): gc.callbacks.
    gc_ms: list[float] = []
    gc_started = [0.0]

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        elif info.get("generation") == 2:
            gc_ms.append((time.perf_counter() - gc_started[0]) * 1000)

    gc.callbacks.append(gc_timer)
    if gc_freeze:
        # What a server could do once started: move everything allocated so far (modules,
        # Django, the model) out of the collector's reach, so full collections only scan
        # what calls allocate.
        gc.collect()
        gc.freeze()

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        interval = 0.010
        samples: list[float] = []
        report_at = loop.time() + 1.0
        while True:
            start = loop.time()
            await asyncio.sleep(interval)
            now = loop.time()
            samples.append(max(0.0, (now - start - interval) * 1000))
            if now >= report_at:
                report_at = now + 1.0
                line = {
                    "event": "lag",
                    "t": time.monotonic(),
                    "lag_ms": [round(s, 2) for s in samples],
                    "vad_inferences": batcher.inferences,
                    "vad_windows": batcher.windows,
                    "vad_push_p50_ms": _pct(push_ms, 50),
                    "vad_push_p95_ms": _pct(push_ms, 95),
                    "vad_push_max_ms": _max(push_ms),
                    "gc2_ms": [round(g, 1) for g in gc_ms],
                }
                samples = []
                push_ms.clear()
                gc_ms.clear()
                print(json.dumps(line), flush=True)

    tasks: list[asyncio.Task[None]] = []

    def start_probe() -> None:
        if slow_callback_ms is not None:
            import logging

            logging.getLogger("asyncio").setLevel(logging.WARNING)
            loop = asyncio.get_event_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = slow_callback_ms / 1000
        tasks.append(asyncio.ensure_future(probe()))
        print(json.dumps({"event": "ready"}), flush=True)

    def ready() -> None:
        reactor.callLater(0, start_probe)  # type: ignore[attr-defined]

    Server(
        application=application,
        endpoints=[f"tcp:port={port}:interface=127.0.0.1"],
        ready_callable=ready,
        verbosity=0,
    ).run()


# ================================================================ load generator process

_MASK_KEY = b"\x5a\x17\xc3\x8e"


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented client→server WebSocket frame, masked with a fixed key (RFC 6455
    wants an unpredictable key against proxy cache poisoning; irrelevant on loopback)."""
    import numpy as np

    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    key = np.frombuffer(_MASK_KEY * (n // 4 + 1), dtype=np.uint8)[:n]
    masked = (np.frombuffer(payload, dtype=np.uint8) ^ key).tobytes()
    return header + _MASK_KEY + masked


@dataclass
class TurnRecord:
    """One caller turn as the client saw it (times are time.monotonic())."""

    index: int
    speech_end_ms: float | None = None  # vad.speech_end audio position
    speech_end_at: float | None = None  # that position on the client's send clock
    first_audio_at: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    end_of_turn: str | None = None
    status: str | None = None


class LoadCall(asyncio.Protocol):
    """One caller: a minimal WebSocket client that streams its plan frame by frame."""

    def __init__(self, gen: LoadGenerator, index: int, token: str, plan: list[str]) -> None:
        self.gen = gen
        self.index = index
        self.token = token
        self.plan = plan  # clip names, in turn order (cycled)
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshake_done = False
        self.state = "connecting"  # connecting, mic, lead, speak, wait, gap, hangup, done
        self.failed: str | None = None
        self.lost = False  # the connection failed or the server dropped it before the hang-up
        self.last_pong = 0  # highest ping id answered
        self.session_at: float | None = None
        self.sent_at: list[float] = []  # send time of every audio frame, by frame index
        self.next_due = 0.0
        self.clip: list[bytes] = []
        self.clip_pos = 0
        self.silence_left = 0
        self.utterances = 0
        self.turns_done = 0
        self.reply_wait_since = 0.0
        self.turns_before: set[int] = set()
        self.turns: dict[int, TurnRecord] = {}
        self.pings: dict[int, float] = {}
        self.ping_rtts: list[tuple[float, float]] = []  # (sent at, rtt ms)
        self.audio_turn: int | None = None  # reply whose first audio frame is awaited
        self.play_end: float | None = None
        self.agent_frames = 0
        self.underruns: list[float] = []  # ms late
        self.ended = asyncio.get_running_loop().create_future()

    # -- socket

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        host, port = self.gen.host, self.gen.port
        request = (
            f"GET {self.gen.path}?token={self.token} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "User-Agent: parley-bench-concurrency\r\n\r\n"
        )
        transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state not in ("hangup", "done") and self.failed is None:
            self.failed = f"connection lost in state {self.state}: {exc}"
            self.lost = True
        self._finish()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.buffer
        buf += data
        if not self.handshake_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self._fail(f"handshake refused: {status.decode(errors='replace')}")
                return
            self.handshake_done = True
            del buf[: end + 4]
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if n - pos < head + length:
                break
            opcode = b0 & 0x0F
            start = pos + head
            if opcode == 0x2:
                self._on_audio(length, now)
            elif opcode == 0x1:
                self._on_event(json.loads(bytes(buf[start : start + length])), now)
            elif opcode == 0x9:  # ping from Daphne: answer with a pong
                self._write(_client_frame(0xA, bytes(buf[start : start + length])))
            elif opcode == 0x8:
                if self.state != "done":
                    if self.state != "hangup" and self.failed is None:
                        self.failed = "server closed the connection"
                        self.lost = True
                    self._write(_client_frame(0x8, b""))
                    self._finish()
            pos = start + length
        if pos:
            del buf[:pos]

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def _fail(self, reason: str, *, lost: bool = True) -> None:
        if self.failed is None:
            self.failed = reason
            self.lost = lost
        if self.transport is not None:
            self.transport.close()
        self._finish()

    def _finish(self) -> None:
        self.state = "done"
        if not self.ended.done():
            self.ended.set_result(None)

    # -- outgoing audio (called by the generator's clock)

    def pump(self, now: float) -> None:
        """Send every frame due by ``now`` (normally one per 20 ms tick)."""
        while self.next_due <= now and self.state in ("mic", "lead", "speak", "wait", "gap"):
            self._write(self._next_frame(now))
            self.gen.send_lag_ms.append((now - self.next_due) * 1000)
            self.sent_at.append(now)
            self.next_due += FRAME_S
            if len(self.sent_at) % PING_EVERY == 0:
                ping = len(self.sent_at) // PING_EVERY
                self.pings[ping] = now
                self._write(self.gen.text_frame({"type": "ping", "id": ping}))

    def _next_frame(self, now: float) -> bytes:
        if self.state == "speak":
            frame = self.clip[self.clip_pos]
            self.clip_pos += 1
            if self.clip_pos == len(self.clip):
                self.state = "wait"
                self.reply_wait_since = now
            return frame
        if self.state in ("lead", "gap"):
            self.silence_left -= 1
            if self.silence_left <= 0:
                self._utterance_start()
        elif self.state == "wait" and now - self.reply_wait_since > REPLY_TIMEOUT_S:
            self.gen.errors.append(f"call {self.index}: no reply within {REPLY_TIMEOUT_S:.0f} s")
            self._reply_done(now)
        return self.gen.silence_frame

    def start_talking(self, lead_s: float) -> None:
        self.state = "lead"
        self.silence_left = max(1, round(lead_s / FRAME_S))

    def _utterance_start(self) -> None:
        name = self.plan[self.utterances % len(self.plan)]
        self.utterances += 1
        self.clip = self.gen.clips[name]
        self.clip_pos = 0
        self.turns_before = set(self.turns)
        self.state = "speak"

    def _reply_done(self, now: float) -> None:
        self.turns_done += 1
        self.gen.turn_finished(self)
        if self.gen.stopping and self.turns_done >= self.gen.min_turns:
            self.hang_up()
        else:
            self.state = "gap"
            self.silence_left = round(self.gen.rng.uniform(0.3, 1.0) / FRAME_S)

    def hang_up(self) -> None:
        if self.state in ("hangup", "done"):
            return
        self.state = "hangup"
        self._write(self.gen.text_frame({"type": "hangup"}))

    # -- incoming

    def _on_audio(self, length: int, now: float) -> None:
        self.agent_frames += 1
        if self.audio_turn is not None:
            turn = self.turns.get(self.audio_turn)
            if turn is not None and turn.first_audio_at is None:
                turn.first_audio_at = now
            self.audio_turn = None
        duration = length / 2 / self.gen.output_rate
        if self.play_end is None or now <= self.play_end:
            start = now if self.play_end is None else self.play_end
        else:
            self.underruns.append((now - self.play_end) * 1000)
            start = now
        self.play_end = start + duration

    def _on_event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("type")
        index = event.get("turn", 0)
        if kind == "pong":
            sent = self.pings.pop(event.get("id"), None)
            if sent is not None:
                self.ping_rtts.append((sent, (now - sent) * 1000))
                self.last_pong = max(self.last_pong, event["id"])
        elif kind == "session.started":
            self.session_at = now
            self.gen.output_rate = event["output"]["sample_rate_hz"]
            self.state = "mic"
            self.next_due = self.gen.phase_time(self.index, now)
            self.gen.call_connected(self)
        elif kind == "turn.started" and event.get("role") == "caller":
            self.turns.setdefault(index, TurnRecord(index))
        elif kind == "vad.speech_end":
            turn = self.turns.setdefault(index, TurnRecord(index))
            turn.speech_end_ms = float(event["audio_ms"])
            turn.speech_end_at = self._send_time_of(turn.speech_end_ms)
        elif kind == "transcript.final":
            self.turns.setdefault(index, TurnRecord(index)).end_of_turn = event.get("end_of_turn")
        elif kind == "agent.speaking":
            self.audio_turn = index
            self.play_end = None
        elif kind == "turn.metrics" and index in self.turns:
            self.turns[index].metrics = {
                k: v for k, v in event.items() if k.endswith("_ms") and k != "t_ms"
            }
        elif kind == "turn.ended" and index > 0:
            if index in self.turns:
                self.turns[index].status = event.get("status")
            new = set(self.turns) - self.turns_before
            ended = {i for i, t in self.turns.items() if t.status is not None}
            if self.state == "wait" and new and new <= ended:
                self._reply_done(now)
        elif kind == "error":
            if event.get("fatal"):
                self._fail(f"fatal error {event.get('code')}: {event.get('message')}")
            else:
                self.gen.errors.append(f"call {self.index}: {event.get('code')}")
        elif kind == "call.ended":
            self._finish()
            if self.transport is not None:
                self.transport.close()

    def _send_time_of(self, audio_ms: float) -> float | None:
        """When the client sent the sample at ``audio_ms`` of its stream: the send time of
        the frame holding it, less the audio after it in that frame."""
        k = int(audio_ms // (FRAME_S * 1000))
        if k >= len(self.sent_at):
            return None
        return self.sent_at[k] - ((k + 1) * FRAME_S - audio_ms / 1000)


class LoadGenerator:
    """The load-generator process: N :class:`LoadCall` on one asyncio loop and one clock.

    Talks to the orchestrator over stdin/stdout (JSON lines): prints ``connected`` once
    every call is in (or failed), ``progress`` lines and ``turns_done``; reads ``go`` (start
    talking) and ``stop`` (hang up after the current turn).
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        from parley.agents.voice.audio import read_wav

        self.host, self.port, self.path = spec["host"], spec["port"], spec["path"]
        self.tokens: list[str] = spec["tokens"]
        self.plans: list[list[str]] = spec["plans"]
        self.min_turns: int = spec["turns"]
        self.connect_rate: float = spec["connect_rate"]
        self.rng = random.Random(spec["seed"])
        self.clips: dict[str, list[bytes]] = {}
        for name in {n for plan in self.plans for n in plan}:
            pcm, _ = read_wav(SPEECH / name)
            pcm += bytes(-len(pcm) % FRAME_BYTES)
            self.clips[name] = [
                _client_frame(0x2, pcm[i : i + FRAME_BYTES])
                for i in range(0, len(pcm), FRAME_BYTES)
            ]
        self.silence_frame = _client_frame(0x2, bytes(FRAME_BYTES))
        self.output_rate = 24_000
        self.calls: list[LoadCall] = []
        self.send_lag_ms: deque[float] = deque(maxlen=2_000_000)
        self.errors: list[str] = []
        self.connected = 0
        self.turns_total = 0
        self.stopping = False
        self.clock0 = 0.0
        self.window: dict[str, float] = {}
        self._all_connected = asyncio.Event()
        self._go = asyncio.Event()

    def text_frame(self, payload: dict[str, Any]) -> bytes:
        return _client_frame(0x1, json.dumps(payload).encode())

    def phase_time(self, index: int, now: float) -> float:
        """The first tick at or after ``now`` of call ``index``'s phase."""
        offset = (index % PHASES) * FRAME_S / PHASES
        periods = max(0, int((now - self.clock0 - offset) // FRAME_S) + 1)
        return self.clock0 + offset + periods * FRAME_S

    def call_connected(self, call: LoadCall) -> None:
        self.connected += 1
        self._check_connected()

    def _check_connected(self) -> None:
        settled = sum(1 for c in self.calls if c.session_at is not None or c.failed)
        if settled == len(self.tokens):
            self._all_connected.set()

    def turn_finished(self, call: LoadCall) -> None:
        self.turns_total += 1
        if not self.stopping and all(
            c.turns_done >= self.min_turns for c in self.calls if not c.failed
        ):
            self._say({"event": "turns_done", "t": time.monotonic()})

    def _say(self, message: dict[str, Any]) -> None:
        print(json.dumps(message), flush=True)

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        self.clock0 = time.monotonic()
        commands, read_commands = await stdin_commands()
        tasks = [
            read_commands,
            loop.create_task(self._clock(), name="clock"),
            loop.create_task(self._progress(), name="progress"),
        ]
        for i, token in enumerate(self.tokens):
            call = LoadCall(self, i, token, self.plans[i])
            self.calls.append(call)
            try:
                await loop.create_connection(lambda c=call: c, self.host, self.port)
            except OSError as exc:
                call.failed = f"connect: {exc}"
                call._finish()
                self._check_connected()
            await asyncio.sleep(1 / self.connect_rate)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_connected.wait(), timeout=60)
        self.window["connected"] = time.monotonic()
        self._say(
            {
                "event": "connected",
                "n": self.connected,
                "failed": sum(1 for c in self.calls if c.failed),
            }
        )
        while await commands.get() != "go":
            pass
        self.window["start"] = time.monotonic()
        for call in self.calls:
            if not call.failed:
                call.start_talking(self.rng.uniform(0.5, 3.0))
        while await commands.get() != "stop":
            pass
        self.window["end"] = time.monotonic()
        self.stopping = True
        for call in self.calls:
            if call.state in ("mic", "lead", "gap") and call.turns_done >= self.min_turns:
                call.hang_up()
        pending = [c.ended for c in self.calls if not c.ended.done()]
        if pending:
            await asyncio.wait(pending, timeout=REPLY_TIMEOUT_S + 15)
        for call in self.calls:
            if not call.ended.done():
                call._fail(f"did not end (state {call.state})", lost=False)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return self.result()

    async def _clock(self) -> None:
        """One clock for every call: each of the 20 phases fires once per 20 ms."""
        k = 0
        by_phase: list[list[LoadCall]] = [[] for _ in range(PHASES)]
        placed = 0
        while True:
            phase = k % PHASES
            due = self.clock0 + k * FRAME_S / PHASES
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            while placed < len(self.calls):
                by_phase[placed % PHASES].append(self.calls[placed])
                placed += 1
            now = time.monotonic()
            for call in by_phase[phase]:
                call.pump(now)
            k += 1

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            self._say({"event": "progress", "connected": self.connected, "turns": self.turns_total})

    def result(self) -> dict[str, Any]:
        calls = []
        for c in self.calls:
            calls.append(
                {
                    "index": c.index,
                    "failed": c.failed,
                    "lost": c.lost,
                    # Frames the server never confirmed (sent after the last answered ping).
                    "frames_unconfirmed": len(c.sent_at) - c.last_pong * PING_EVERY,
                    "frames_sent": len(c.sent_at),
                    "turns": [vars(t) for t in c.turns.values()],
                    "pings": c.ping_rtts,
                    "pings_unanswered": len(c.pings),
                    "agent_frames": c.agent_frames,
                    "underruns_ms": c.underruns,
                }
            )
        lags = list(self.send_lag_ms)
        return {
            "window": self.window,
            "calls": calls,
            "errors": self.errors[:50],
            "errors_total": len(self.errors),
            "send_lag_p99_ms": _pct(lags, 99),
            "send_lag_max_ms": _max(lags),
        }


def load(spec_path: Path, out: Path) -> None:
    spec = json.loads(spec_path.read_text())
    out.write_text(json.dumps(asyncio.run(LoadGenerator(spec).run())))
    print(json.dumps({"event": "result", "path": str(out)}), flush=True)


# ================================================================ orchestrator


class ProcStat:
    """CPU time and RSS of processes, from /proc (no dependency)."""

    TICK = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def cpu_s(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / ProcStat.TICK

    @staticmethod
    def rss_mb(pid: int) -> float:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except FileNotFoundError:
            pass
        return 0.0

    @staticmethod
    def named(name: str) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "comm").read_text().strip() == name:
                        pids.append(int(entry.name))
                except (FileNotFoundError, ProcessLookupError):
                    continue
        return pids

    @staticmethod
    def machine_busy_s() -> float:
        """CPU time spent busy by the whole machine, all cores (s)."""
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]
        return (sum(values[:8]) - idle) / ProcStat.TICK


class CpuSampler:
    """Samples CPU and RSS of the benchmark's processes, and the bench database's commit and
    connection counters, every 0.5 s on a thread."""

    def __init__(self, pids: dict[str, int], *, database_url: str) -> None:
        import psycopg

        self.pids = pids
        self._db_name = database_url.split("?", 1)[0].rsplit("/", 1)[1]
        self._db = psycopg.connect(database_url.split("?", 1)[0], autocommit=True)
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._pg_seen: dict[int, float] = {}
        self._pg_total = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> dict[str, float]:
        sample = {"t": time.monotonic(), "machine": ProcStat.machine_busy_s()}
        for name, pid in self.pids.items():
            sample[name] = ProcStat.cpu_s(pid)
        sample["server_rss_mb"] = ProcStat.rss_mb(self.pids["server"])
        for pid in ProcStat.named("postgres"):
            cpu = ProcStat.cpu_s(pid)
            self._pg_total += cpu - self._pg_seen.get(pid, 0.0)
            self._pg_seen[pid] = cpu
        sample["postgres"] = self._pg_total
        commits, sessions = self._db.execute(
            "SELECT xact_commit, sessions FROM pg_stat_database WHERE datname = %s",
            (self._db_name,),
        ).fetchone()
        sample["db_commits"], sample["db_sessions"] = float(commits), float(sessions)
        return sample

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(0.5)

    def __enter__(self) -> CpuSampler:
        self._sample()  # postgres baseline
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._db.close()

    def window(self, start: float, end: float) -> dict[str, float]:
        """CPU % of one core per process over [start, end], peak RSS of the server."""
        inside = [s for s in self.samples if start <= s["t"] <= end]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        seconds = last["t"] - first["t"]
        out = {
            f"{name}_cpu_pct": round((last[name] - first[name]) / seconds * 100, 1)
            for name in (*self.pids, "postgres", "machine")
        }
        ours = sum(out[f"{name}_cpu_pct"] for name in (*self.pids, "postgres"))
        out["other_cpu_pct"] = round(max(0.0, out["machine_cpu_pct"] - ours), 1)
        for name in ("db_commits", "db_sessions"):
            out[f"{name}_per_s"] = round((last[name] - first[name]) / seconds, 1)
        out["server_rss_mb"] = round(max(s["server_rss_mb"] for s in inside), 1)
        return out


def _django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def _database_ensure(url: str) -> None:
    """Create the database named in ``url`` if it does not exist (PostgreSQL)."""
    import psycopg

    url = url.split("?", 1)[0]
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _agent_ensure(*, llm_base_url: str, record: bool) -> Any:
    """The bench agent: no tools (the simulator's echo policy answers), no greeting, an
    OpenAI-compatible pool pointing at the LLM simulator process."""
    from parley.agents.models import Agent
    from parley.agents.services import agent_create, scenario_install
    from parley.testing.simulators import simulator_pool_ensure

    pool = simulator_pool_ensure(
        slug=POOL_SLUG, name="LLM simulator process (bench/concurrency.py)", base_url=llm_base_url
    )
    agent = Agent.objects.filter(slug=AGENT_SLUG).first()
    if agent is None:
        scenario = scenario_install(slug="hospital")
        agent = agent_create(
            slug=AGENT_SLUG,
            name="Concurrency benchmark",
            scenario=scenario,
            model_pool=pool,
            prompt="You are a benchmark agent.",
        )
    agent.tools.clear()
    agent.greeting = ""
    agent.model_pool = pool
    agent.recording_retention_days = 30 if record else 0
    agent.max_concurrent_calls = 0  # no cap: the benchmarks place many calls at once
    agent.max_call_duration_s = 0  # a soak's calls may last its whole run
    agent.save()
    return agent


def _clips_select(agent: Any) -> list[str]:
    """Speech clips the agent's VAD hears as exactly one utterance, 1.2-6 s long."""
    from parley.agents.providers import call_config_build
    from parley.agents.selectors import prompt_active
    from parley.agents.voice.audio import read_wav, silence
    from parley.agents.voice.vad import StreamingVAD

    config = call_config_build(agent=agent, prompt=prompt_active(agent=agent))
    chosen = []
    for path in sorted(SPEECH.glob("*.wav")):
        pcm, rate = read_wav(path)
        seconds = len(pcm) / 2 / rate
        if rate != 16_000 or not CLIP_SECONDS[0] <= seconds <= CLIP_SECONDS[1]:
            continue
        events = StreamingVAD(config.vad).process(
            silence(1000, sample_rate_hz=rate) + pcm + silence(2000, sample_rate_hz=rate), at=0.0
        )
        kinds = [e.kind for e in events if e.kind in ("speech_start", "speech_end")]
        if kinds == ["speech_start", "speech_end"]:
            chosen.append(path.name)
    if not chosen:
        raise SystemExit("no usable speech clip in tests/fixtures/audio/speech")
    return chosen


async def stdin_commands() -> tuple[asyncio.Queue[str], asyncio.Task[None]]:
    """The orchestrator's commands to a load generator: one per stdin line, in a queue filled
    by the returned task (keep it; cancel it at the end)."""
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def read_commands() -> None:
        while line := await reader.readline():
            await commands.put(line.decode().strip())

    return commands, loop.create_task(read_commands(), name="commands")


class Child:
    """A child process speaking JSON lines on stdout; lines are queued by a reader thread."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], stderr_path: Path | None = None
    ) -> None:
        self.name = name
        self.stderr = stderr_path.open("w+b") if stderr_path else tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lines: deque[dict[str, Any]] = deque()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def wait_for(self, event: str, *, timeout_s: float, on_line: Any = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            while self.lines:
                line = self.lines.popleft()
                if line.get("event") == event:
                    return line
                if on_line is not None:
                    on_line(line)
            if self.process.poll() is not None and not self.lines:
                raise SystemExit(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
            time.sleep(0.05)
        raise SystemExit(f"{self.name}: no {event!r} within {timeout_s:.0f} s\n{self.tail()}")

    def tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ServerLag:
    """Loop-lag lines of the server process, kept with their time."""

    def __init__(self, server: Child) -> None:
        self.server = server
        self.lines: list[dict[str, Any]] = []

    def drain(self) -> None:
        while self.server.lines:
            line = self.server.lines.popleft()
            if line.get("event") == "lag":
                self.lines.append(line)

    def wait_idle(self, *, timeout_s: float = 300.0) -> None:
        """Wait until the server has worked off the last step (no VAD windows for 2 s): a
        server that fell behind keeps processing queued frames after the callers left."""
        since = time.monotonic()
        deadline = since + timeout_s
        while time.monotonic() < deadline:
            self.drain()
            recent = [line for line in self.lines if line["t"] > since + 1.0]
            if len(recent) >= 3 and recent[-1]["vad_windows"] - recent[-3]["vad_windows"] < 20:
                return
            time.sleep(0.5)

    def window(self, start: float, end: float) -> dict[str, Any]:
        self.drain()
        inside = [line for line in self.lines if start + 1.0 <= line["t"] <= end]
        samples = [s for line in inside for s in line["lag_ms"]]
        out: dict[str, Any] = {
            "loop_lag_p50_ms": _pct(samples, 50),
            "loop_lag_p95_ms": _pct(samples, 95),
            "loop_lag_p99_ms": _pct(samples, 99),
            "loop_lag_max_ms": _max(samples),
        }
        pushes = [line for line in inside if line.get("vad_push_p95_ms") is not None]
        if pushes:
            out["vad_push_p50_ms"] = round(
                sorted(p["vad_push_p50_ms"] for p in pushes)[len(pushes) // 2], 1
            )
            out["vad_push_p95_ms"] = max(p["vad_push_p95_ms"] for p in pushes)
            out["vad_push_max_ms"] = max(p["vad_push_max_ms"] for p in pushes)
        pauses = [g for line in inside for g in line.get("gc2_ms", [])]
        out["gc_full_collections"] = len(pauses)
        out["gc_full_max_ms"] = _max(pauses)
        if len(inside) >= 2:
            inferences = inside[-1]["vad_inferences"] - inside[0]["vad_inferences"]
            windows = inside[-1]["vad_windows"] - inside[0]["vad_windows"]
            out["vad_batch_mean"] = round(windows / inferences, 1) if inferences else None
            out["vad_windows_per_s"] = round(windows / (inside[-1]["t"] - inside[0]["t"]))
        return out


def _step_figures(
    result: dict[str, Any], *, endpointing_ms: float, delays_ms: float
) -> dict[str, Any]:
    window = result["window"]
    start, end = window["start"], window["end"]
    added, server_part, eot_late, ttfa = [], [], [], []
    turns = unanswered = 0
    pings: list[float] = []
    pings_lost = late_pings = 0
    agent_frames = underruns = 0
    underrun_ms: list[float] = []
    dropped = failed = unfinished = 0
    reasons: dict[str, int] = {}
    for call in result["calls"]:
        if call["lost"]:
            failed += 1
            dropped += call["frames_unconfirmed"]
        elif call["failed"]:
            unfinished += 1
        agent_frames += call["agent_frames"]
        underruns += len(call["underruns_ms"])
        underrun_ms += call["underruns_ms"]
        for sent, rtt in call["pings"]:
            if start <= sent <= end:
                pings.append(rtt)
                late_pings += rtt > LATE_CALLER_MS
        pings_lost += call["pings_unanswered"]
        for turn in call["turns"]:
            at = turn["speech_end_at"]
            if at is None or not start <= at <= end:
                continue
            turns += 1
            reason = turn["end_of_turn"] or "?"
            reasons[reason] = reasons.get(reason, 0) + 1
            if turn["first_audio_at"] is None:
                unanswered += 1
                continue
            client_ttfa = (turn["first_audio_at"] - at) * 1000
            ttfa.append(client_ttfa)
            added.append(client_ttfa - endpointing_ms - delays_ms)
            m = turn["metrics"]
            if "ttfa_ms" in m and "endpointing_ms" in m:
                server_part.append(m["ttfa_ms"] - m["endpointing_ms"] - delays_ms)
                eot_late.append(m["endpointing_ms"] - endpointing_ms)
    return {
        "window_s": round(end - start, 1),
        "calls_failed": failed,
        "calls_unfinished": unfinished,
        "turns": turns,
        "turns_unanswered": unanswered,
        "end_of_turn_reasons": reasons,
        "client_ttfa_p50_ms": _pct(ttfa, 50),
        "client_ttfa_p95_ms": _pct(ttfa, 95),
        "added_ttfa_p50_ms": _pct(added, 50),
        "added_ttfa_p95_ms": _pct(added, 95),
        "added_ttfa_max_ms": _max(added),
        "server_decided_to_audio_p95_ms": _pct(server_part, 95),
        "end_of_turn_late_p95_ms": _pct(eot_late, 95),
        "caller_wait_p50_ms": _pct(pings, 50),
        "caller_wait_p95_ms": _pct(pings, 95),
        "caller_wait_max_ms": _max(pings),
        "caller_frames_late_pct": round(100 * late_pings / len(pings), 2) if pings else None,
        "caller_pings_unanswered": pings_lost,
        "caller_frames_dropped": dropped,
        "agent_frames": agent_frames,
        "agent_underruns": underruns,
        "agent_underrun_max_ms": _max(underrun_ms),
        "loadgen_send_lag_p99_ms": result["send_lag_p99_ms"],
        "loadgen_send_lag_max_ms": result["send_lag_max_ms"],
        "errors": result["errors_total"],
    }


COLUMNS = [
    ("N", "calls"),
    ("failed/behind", "calls_state"),
    ("turns", "turns"),
    ("added TTFA p50/p95", "added_ttfa"),
    ("decided→audio p95", "server_decided_to_audio_p95_ms"),
    ("EOT late p95", "end_of_turn_late_p95_ms"),
    ("loop lag p95/max", "loop_lag"),
    ("caller wait p95/max", "caller_wait"),
    ("late caller %", "caller_frames_late_pct"),
    ("dropped", "caller_frames_dropped"),
    ("underruns", "agent_underruns"),
    ("server CPU %", "server_cpu_pct"),
    ("RSS MB", "server_rss_mb"),
    ("loadgen CPU %", "loadgen_cpu_pct"),
    ("LLM sim CPU %", "llm_cpu_pct"),
    ("postgres CPU %", "postgres_cpu_pct"),
    ("other CPU %", "other_cpu_pct"),
]


def _cell(row: dict[str, Any], key: str) -> str:
    def f(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    if key == "added_ttfa":
        return f"{f(row.get('added_ttfa_p50_ms'))} / {f(row.get('added_ttfa_p95_ms'))}"
    if key == "loop_lag":
        return f"{f(row.get('loop_lag_p95_ms'))} / {f(row.get('loop_lag_max_ms'))}"
    if key == "calls_state":
        return f"{f(row.get('calls_failed'))} / {f(row.get('calls_unfinished'))}"
    if key == "caller_wait":
        return f"{f(row.get('caller_wait_p95_ms'))} / {f(row.get('caller_wait_max_ms'))}"
    return f(row.get(key))


def table(rows: list[dict[str, Any]]) -> str:
    header = [title for title, _ in COLUMNS]
    cells = [[_cell(row, key) for _, key in COLUMNS] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    from importlib.metadata import version

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "",
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
        **{name: version(name) for name in ("daphne", "twisted", "autobahn", "onnxruntime")},
    }


def orchestrate(args: argparse.Namespace) -> None:
    from parley.testing.simulators import SimulatorProcess, free_port

    out_dir = ROOT / "var" / "bench" / "concurrency"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "parley.platform.settings.local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": "",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PARLEY_SIMULATED_SPEECH": "1",
        "PARLEY_CALL_TOKEN_TTL_S": "3600",
        "PARLEY_RECORDINGS_DIR": str(out_dir / "recordings"),
        "PARLEY_REPORTS_DIR": str(out_dir / "reports"),
        "PARLEY_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    print(f"database {args.database_url}: create if missing, migrate", flush=True)
    _database_ensure(args.database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    _django_setup(env)
    from parley.agents.call_tokens import call_token_issue

    llm = SimulatorProcess("bench-llm", ttft_ms=0, itl_ms=0)
    llm.start()
    server: Child | None = None
    rows: list[dict[str, Any]] = []
    try:
        agent = _agent_ensure(llm_base_url=llm.base_url, record=args.record)
        clips = _clips_select(agent)
        print(f"agent {agent.slug}: {len(clips)} clips ({', '.join(clips)})", flush=True)
        port = free_port()
        argv = [sys.executable, __file__, "--serve", "--port", str(port)]
        if args.slow_callback_ms is not None:
            argv += ["--slow-callback-ms", str(args.slow_callback_ms)]
        if args.vad_tick_ms is not None:
            argv += ["--vad-tick-ms", str(args.vad_tick_ms)]
        if args.event_flush_s is not None:
            argv += ["--event-flush-s", str(args.event_flush_s)]
        if args.gc_freeze:
            argv += ["--gc-freeze"]
        server = Child("server", argv, env=env, stderr_path=args.server_log)
        server.wait_for("ready", timeout_s=60)
        lag = ServerLag(server)
        assert llm.process is not None
        # Warm-up (not reported): a process's first call and first LLM request pay one-time
        # costs on the loop (imports; the openai client's first request: ~150 ms each).
        steps = [(2, 1, True)] + [(n, args.turns, False) for n in args.calls]
        for n, turns, warm_up in steps:
            row = _step(
                n,
                turns=turns,
                args=args,
                env=env,
                port=port,
                clips=clips,
                issue=lambda: call_token_issue(agent=agent, purpose="server"),
                pids={"server": server.process.pid, "llm": llm.process.pid},
                lag=lag,
                endpointing_ms=float(agent.endpointing_ms),
                out_dir=out_dir,
            )
            lag.wait_idle()
            if warm_up:
                print(f"warm-up: {n} calls, {row['turns']} turns (not reported)", flush=True)
                continue
            rows.append(row)
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        if server is not None:
            server.stop()
        llm.stop()
    print()
    print(table(rows))
    print(
        "\nms. added TTFA = caller's TTFA - end-of-turn silence (500 ms). failed: calls whose "
        "connection failed; behind: calls still waiting for the server at the end. caller "
        "wait = ping round trip behind the caller's frames; late = over "
        f"{LATE_CALLER_MS:.0f} ms. CPU in % of one core (2 cores = 200 %)."
    )
    if args.json:
        report = {
            "benchmark": "concurrency",
            "machine": _machine(),
            "settings": {
                "turns": args.turns,
                "database": args.database_url.rsplit("@", 1)[-1],
                "recording": args.record,
                "simulated_delays_ms": {"stt": 0, "llm_ttft": 0, "llm_itl": 0, "tts_ttfb": 0},
                "vad_tick_ms": args.vad_tick_ms,
                "event_flush_s": args.event_flush_s,
                "late_caller_ms": LATE_CALLER_MS,
                "ping_every_frames": PING_EVERY,
            },
            "rows": rows,
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")


def _step(
    n: int,
    *,
    turns: int,
    args: argparse.Namespace,
    env: dict[str, str],
    port: int,
    clips: list[str],
    issue: Any,
    pids: dict[str, int],
    lag: ServerLag,
    endpointing_ms: float,
    out_dir: Path,
) -> dict[str, Any]:
    rng = random.Random(n)
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "path": f"/ws/agents/{AGENT_SLUG}/call",
        "tokens": [issue() for _ in range(n)],
        "plans": [rng.sample(clips, len(clips)) for _ in range(n)],
        "turns": turns,
        "connect_rate": args.connect_rate,
        "seed": n,
    }
    spec_path = out_dir / f"load-{n}.json"
    result_path = out_dir / f"result-{n}.json"
    spec_path.write_text(json.dumps(spec))
    gen = Child(
        "load generator",
        [sys.executable, __file__, "--load", str(spec_path), "--out", str(result_path)],
        env=env,
    )

    def progress(line: dict[str, Any]) -> None:
        if line.get("event") == "progress":
            print(
                f"  N={n}: {line['connected']}/{n} connected, {line['turns']} turns",
                flush=True,
            )

    print(f"N={n}: connecting", flush=True)
    try:
        with CpuSampler(
            {**pids, "loadgen": gen.process.pid}, database_url=args.database_url
        ) as cpu:
            connected = gen.wait_for("connected", timeout_s=120, on_line=progress)
            print(f"  N={n}: {connected['n']} connected, {connected['failed']} failed", flush=True)
            gen.send("go")
            gen.wait_for("turns_done", timeout_s=600, on_line=progress)
            gen.send("stop")
            gen.wait_for("result", timeout_s=120, on_line=progress)
            gen.process.wait(timeout=30)
    finally:
        gen.stop()
    spec_path.unlink(missing_ok=True)  # it holds call tokens
    result = json.loads(result_path.read_text())
    window = result["window"]
    row: dict[str, Any] = {"calls": n}
    row.update(_step_figures(result, endpointing_ms=endpointing_ms, delays_ms=0.0))
    row.update(lag.window(window["start"], window["end"]))
    row.update(cpu.window(window["start"], window["end"]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[25, 50, 100, 200],
        help="concurrent calls per step, comma-separated (default 25,50,100,200)",
    )
    parser.add_argument("--turns", type=int, default=3, help="turns per call, at least (3)")
    parser.add_argument("--connect-rate", type=float, default=50.0, help="new calls per second")
    parser.add_argument("--record", action="store_true", help="record the calls (WAV files)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--server-log", type=Path, help="keep the server's stderr in this file")
    parser.add_argument(
        "--vad-tick-ms", type=float, help="the VAD batcher's tick (default: its own)"
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="diagnosis: gc.freeze() in the server once started (shorter full collections)",
    )
    parser.add_argument(
        "--event-flush-s",
        type=float,
        help="how long events gather before they are persisted (default: EventRecorder's own)",
    )
    parser.add_argument(
        "--slow-callback-ms",
        type=float,
        help="diagnosis: run the server's loop in asyncio debug mode and log callbacks slower "
        "than this (slows the server down)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(
            args.port,
            slow_callback_ms=args.slow_callback_ms,
            vad_tick_ms=args.vad_tick_ms,
            event_flush_s=args.event_flush_s,
            gc_freeze=args.gc_freeze,
        )
    elif args.load:
        load(args.load, args.out)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
