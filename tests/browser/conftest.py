"""Browser tests: Playwright driving Debian's Chromium against a real Parley server.

The server is what ``make serve`` runs (``manage.py runserver``, Daphne, local settings, a
SQLite database, the embedded engines) in a subprocess with its own data folder. Host pages
are served from another origin (``http://localhost:<port>`` vs the server's
``http://127.0.0.1:<port>``). Chromium's fake media device plays a WAV as the microphone.

Chromium must be installed (``scripts/system-deps.sh`` installs Debian's ``chromium``): these
tests fail, never skip, without it. Never ``playwright install``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley.agents.voice.audio import load_wav_resampled
from parley.testing.simulators import free_port
from tests.conftest import SPEECH

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]

pytestmark = pytest.mark.browser


@dataclass
class Server:
    """A running Parley server (``make serve``) and its SQLite database."""

    url: str
    db_path: Path
    log_path: Path

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=20)) as db:
            return db.execute(sql, params).fetchall()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


@pytest.fixture(scope="session")
def host_origin_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def parley_server(tmp_path_factory, host_origin_port) -> Iterator[Server]:  # noqa: ANN001
    """``make serve`` in a subprocess: migrate, demo_setup, runserver on a free port."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-deps.sh (installs chromium)")
    var = tmp_path_factory.mktemp("serve-var")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")} | {
        "DJANGO_SETTINGS_MODULE": "parley.platform.settings.local",
        "PARLEY_VAR_DIR": str(var),
        "PARLEY_REPORTS_DIR": str(var / "reports"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "demo_setup")
    origin = f"http://localhost:{host_origin_port}"
    _manage(
        env,
        "shell",
        "-c",
        "from parley.agents.models import Agent; "
        f"Agent.objects.filter(slug='hospital-receptionist').update(allowed_origins='{origin}', "
        "published=True)",
    )
    log_path = var / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(
        url=f"http://127.0.0.1:{port}", db_path=var / "parley.sqlite3", log_path=log_path
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/static/parley/widget.js", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the Parley server did not start:\n{server.log()}")
        time.sleep(0.2)
    yield server
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def host_site(tmp_path_factory, host_origin_port, parley_server, network) -> Iterator[str]:  # noqa: ANN001
    """A customer's web page on another origin, embedding the widget with one script tag."""
    root = tmp_path_factory.mktemp("host-site")
    key = parley_server.query(
        "select publishable_key from agents_agent where slug = ?", "hospital-receptionist"
    )[0][0]
    (root / "index.html").write_text(page_html(parley_server.url, key), encoding="utf-8")
    # The same page reaching Parley through a network link the tests can cut.
    (root / "proxied.html").write_text(page_html(network.url, key), encoding="utf-8")
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", host_origin_port), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{host_origin_port}/index.html"
    httpd.shutdown()
    httpd.server_close()


def page_html(parley_url: str, key: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>St. Example Hospital</title>
<style>body {{ font: 16px Georgia, serif; margin: 40px; color: #333; }}
button {{ all: unset; }} /* a hostile host style: must not reach the widget */</style>
</head><body>
<h1>St. Example Hospital</h1>
<p>Call our receptionist about appointments, prescriptions and lab results.</p>
<script src="{parley_url}/static/parley/widget.js" data-agent="hospital-receptionist"
  data-key="{key}" data-label="Call reception" defer></script>
</body></html>
"""


class NetworkLink:
    """A TCP relay to the Parley server whose live connections a test can cut at once (a
    network drop: the browser sees its WebSocket close abnormally, code 1006)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.live: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.live |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self.lock:
                self.live -= {source, sink}

    def cut(self) -> int:
        """Reset every connection now; returns how many were cut."""
        with self.lock:
            live = list(self.live)
        for s in live:
            with contextlib.suppress(OSError):
                s.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                s.shutdown(socket.SHUT_RDWR)
        return len(live)

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture(scope="session")
def network(parley_server) -> Iterator[NetworkLink]:  # noqa: ANN001
    link = NetworkLink(int(parley_server.url.rsplit(":", 1)[1]))
    yield link
    link.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # noqa: ANN401
        pass


def microphone_wav(path: Path, parts: list[tuple[str, float]]) -> Path:
    """A 16 kHz mono WAV for the fake microphone: ``(clip name, silence_after_s)`` pairs, after
    1.5 s of leading silence (the call connects while the file already plays)."""
    rate = 16_000
    pieces = [np.zeros(int(1.5 * rate), dtype=np.int16)]
    for clip, silence_s in parts:
        pcm = np.frombuffer(load_wav_resampled(SPEECH / clip, sample_rate_hz=rate), np.int16)
        pieces += [pcm, np.zeros(int(silence_s * rate), dtype=np.int16)]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.concatenate(pieces).tobytes())
    return path


@pytest.fixture
def chromium():  # noqa: ANN201
    """``launch(microphone_wav)`` → a Playwright browser whose microphone plays that file."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browsers = []

        def launch(mic: Path | None = None):  # noqa: ANN202
            args = list(CHROMIUM_ARGS)
            if mic is not None:
                args.append(f"--use-file-for-fake-audio-capture={mic}%noloop")
            browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
            browsers.append(browser)
            return browser

        yield launch
        for browser in browsers:
            browser.close()
