"""Screenshots of the dashboard as a user sees it (docs/screenshots/dashboard-*.png).

Logs in to a running server, visits every dashboard page and saves 1440x900 PNGs. The test
call is a real one: Chromium's fake microphone plays ``--audio`` into the widget, so the side
panel shows the call's real tool calls and latencies.

    .venv/bin/python manage.py migrate && .venv/bin/python manage.py demo_setup
    .venv/bin/python manage.py runserver 127.0.0.1:8011 &
    .venv/bin/python scripts/screenshots.py --seed

``--seed`` makes the pages worth looking at on a fresh database: it changes the agent's
prompt once through the edit form (so the diff page has two versions) when it has only one.
The last shot (widget-host-page.png) is the widget on a customer's page served from another
origin (``http://localhost:--host-port``); the script adds that origin to the agent's
allowed origins through the edit form when it is missing.
Needs the ``playwright`` Python package and a Chromium binary; never downloads a browser.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import http.server
import sys
import tempfile
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1440, "height": 900}
SEED_SENTENCE = (
    "When a caller asks about an appointment, confirm their full name and date of birth first."
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8011")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="parley-demo")
    parser.add_argument("--agent", default="hospital-receptionist")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument(
        "--audio",
        type=Path,
        default=ROOT / "parley" / "agents" / "demo" / "ms_my_voice_is_my_passport.wav",
        help="WAV played by the fake microphone during the test call",
    )
    parser.add_argument(
        "--pad-seconds",
        type=float,
        default=15.0,
        help="silence after the recording: Chromium loops the file, and the agent should "
        "finish its reply before the caller speaks again",
    )
    parser.add_argument("--call-timeout", type=float, default=45.0, help="seconds")
    parser.add_argument("--seed", action="store_true", help="add a second prompt version")
    parser.add_argument("--host-port", type=int, default=8013, help="the customer page's port")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.base_url.rstrip("/")
    audio = padded(args.audio, seconds=args.pad_seconds)

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={audio}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.grant_permissions(["microphone"], origin=base)
        page = context.new_page()
        page.on("pageerror", lambda exc: print(f"page error: {exc}", file=sys.stderr))

        def shot(name: str) -> None:
            path = args.out / f"{name}.png"
            page.screenshot(path=str(path))
            print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

        page.goto(f"{base}/dashboard/login/")
        page.fill("#id_username", args.user)
        page.fill("#id_password", args.password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/dashboard/")

        agent_url = f"{base}/dashboard/agents/{args.agent}/"
        if args.seed:
            seed_prompt(page, agent_url)

        page.goto(f"{base}/dashboard/")
        shot("dashboard-agents")

        page.goto(agent_url + "edit/")
        shot("dashboard-agent-edit")

        page.goto(agent_url)
        shot("dashboard-agent")

        latest = page.locator("#prompt-history .version").first.inner_text().lstrip("v")
        page.goto(f"{agent_url}prompts/{latest}/diff/")
        shot("dashboard-prompt-diff")

        page.goto(agent_url + "call/")
        test_call(page, timeout_s=args.call_timeout)
        shot("dashboard-test-call")
        hang_up = page.locator("#test-call button:has-text('Hang up')")
        if hang_up.is_visible():
            hang_up.click()
            page.wait_for_timeout(1000)

        page.goto(f"{base}/dashboard/conversations/")
        shot("dashboard-conversations")
        page.locator("a.row-title").first.click()
        page.get_by_role("heading", name="Timeline").wait_for()
        shot("dashboard-conversation")

        page.goto(f"{base}/dashboard/reports/")
        page.get_by_label("Day").fill(dt.datetime.now(dt.UTC).date().isoformat())
        page.get_by_role("button", name="Generate now").click()
        page.goto(f"{base}/dashboard/reports/")
        page.locator("a.row-title").first.click()
        page.get_by_role("heading", name="TTFA distribution").wait_for()
        shot("dashboard-report")
        page.goto(f"{base}/dashboard/exports/")
        page.get_by_role("button", name="Export").click()
        page.wait_for_timeout(1500)
        shot("dashboard-exports")

        host = f"http://localhost:{args.host_port}"
        origin_allow(page, agent_url, host)
        page.goto(agent_url)
        key = page.locator("#embed-snippet").inner_text().split('data-key="')[1].split('"')[0]
        with host_page_served(args.host_port, base=base, agent=args.agent, key=key) as url:
            customer = browser.new_context(viewport={"width": 1280, "height": 720})
            customer.grant_permissions(["microphone"], origin=host)
            page = customer.new_page()
            page.goto(url)
            page.get_by_role("button", name="Call reception: open the voice call panel").click()
            page.get_by_role("button", name="Start call").click()
            try:
                page.locator("parley-widget .line.agent").first.wait_for(
                    timeout=args.call_timeout * 1000
                )
                page.wait_for_timeout(1500)
            except PlaywrightTimeout:
                print("the agent did not answer on the customer page", file=sys.stderr)
            shot("widget-host-page")
            customer.close()
        browser.close()
    audio.unlink(missing_ok=True)
    return 0


def padded(path: Path, *, seconds: float) -> Path:
    """A temporary copy of the WAV file ``path`` with ``seconds`` of silence appended."""
    with wave.open(str(path), "rb") as src:
        params = src.getparams()
        frames = src.readframes(params.nframes)
    silence = b"\x00" * (round(seconds * params.framerate) * params.sampwidth * params.nchannels)
    out = Path(tempfile.mkstemp(prefix="parley-screenshots-", suffix=".wav")[1])
    with wave.open(str(out), "wb") as dst:
        dst.setparams(params)
        dst.writeframes(frames + silence)
    return out


def seed_prompt(page: Page, agent_url: str) -> None:
    """Change the prompt once through the edit form when the agent has a single version."""
    page.goto(agent_url)
    if page.locator("#prompt-history .version").count() > 1:
        return
    page.goto(agent_url + "edit/")
    prompt = page.locator("#id_prompt")
    text = prompt.input_value()
    first, _, rest = text.partition(". ")
    prompt.fill(f"{first}.\n{rest}\n{SEED_SENTENCE}" if rest else f"{text}\n{SEED_SENTENCE}")
    page.click("button[type=submit]:has-text('Save changes')")
    page.wait_for_url(agent_url)


def origin_allow(page: Page, agent_url: str, origin: str) -> None:
    """Add ``origin`` to the agent's allowed origins through the edit form, if missing."""
    page.goto(agent_url + "edit/")
    field = page.locator("#id_allowed_origins")
    origins = field.input_value()
    if origin in origins.split():
        return
    field.fill(f"{origins.rstrip()}\n{origin}".strip())
    page.click("button[type=submit]:has-text('Save changes')")
    page.wait_for_url(agent_url)


@contextlib.contextmanager
def host_page_served(port: int, *, base: str, agent: str, key: str) -> Iterator[str]:
    """A customer's page embedding the widget, served on ``localhost:port``."""
    root = Path(tempfile.mkdtemp(prefix="parley-host-"))
    (root / "index.html").write_text(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>St. Example Hospital</title>
<style>body {{ font: 17px/1.6 Georgia, serif; margin: 0; color: #2d3436; }}
header {{ background: #0b6e4f; color: #fff; padding: 28px 48px; }}
main {{ padding: 32px 48px; max-width: 640px; }}</style></head><body>
<header><h1>St. Example Hospital</h1></header>
<main><h2>Appointments and prescriptions</h2>
<p>Our receptionist answers around the clock: book or move an appointment, ask about a
prescription or lab result. Press <em>Call reception</em> and speak.</p></main>
<script src="{base}/static/parley/widget.js" data-agent="{agent}" data-key="{key}"
  data-label="Call reception" defer></script>
</body></html>""",
        encoding="utf-8",
    )
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_call(page: Page, *, timeout_s: float) -> None:
    """Start a call in the widget and wait for the first caller turn's latency row."""
    try:
        page.locator("#test-call button:has-text('Start call')").click(timeout=10_000)
    except PlaywrightTimeout:
        print("the widget did not offer a Start call button", file=sys.stderr)
        return
    try:
        page.wait_for_function(
            "() => [...document.querySelectorAll('#latency-rows tr')].some("
            "r => !r.classList.contains('empty-row') && !r.textContent.includes('greeting'))",
            timeout=timeout_s * 1000,
        )
        page.wait_for_timeout(1500)  # let the reply's captions settle
    except PlaywrightTimeout:
        print("no caller turn finished within the timeout", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
