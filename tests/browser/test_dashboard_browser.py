"""An admin edits an agent in the dashboard, publishes it and copies the embed snippet —
in Debian's Chromium against the served Parley."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser]

SLUG = "hospital-receptionist"


def test_admin_edits_publishes_and_copies_the_snippet(chromium, parley_server) -> None:  # noqa: ANN001
    browser = chromium()
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())  # "Unpublish …?" confirmation

    page.goto(f"{parley_server.url}/dashboard/")
    assert "/dashboard/login/" in page.url  # login required
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("parley-demo")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Hospital receptionist").first.wait_for()

    # Edit: an out-of-range value is refused inline and nothing is saved.
    page.goto(f"{parley_server.url}/dashboard/agents/{SLUG}/edit/")
    page.get_by_label("Speaking rate").fill("185")
    page.get_by_label("End-of-turn silence").fill("50")
    page.get_by_role("button", name="Save changes").click()
    error = page.locator("#id_endpointing_ms_error")
    error.wait_for()
    assert "100" in error.inner_text()
    assert parley_server.query("select tts_rate_wpm from agents_agent where slug = ?", SLUG) == [
        (175,)
    ]

    page.get_by_label("End-of-turn silence").fill("650")
    prompt = page.get_by_role("textbox", name="Prompt", exact=True)
    prompt.fill(prompt.input_value() + " Keep every answer under two sentences.")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(rf"/dashboard/agents/{SLUG}/$"))
    row = parley_server.query(
        "select tts_rate_wpm, endpointing_ms from agents_agent where slug = ?", SLUG
    )
    assert row == [(185, 650)]
    versions = parley_server.query(
        "select version, active from agents_promptversion p join agents_agent a "
        "on p.agent_id = a.id where a.slug = ? order by version",
        SLUG,
    )
    assert versions == [(1, 0), (2, 1)]

    # Unpublish, then publish again.
    page.get_by_role("button", name="Unpublish", exact=True).click()
    page.get_by_role("button", name="Publish", exact=True).wait_for()
    assert parley_server.query("select published from agents_agent where slug = ?", SLUG) == [(0,)]
    page.get_by_role("button", name="Publish", exact=True).click()
    page.get_by_role("button", name="Unpublish", exact=True).wait_for()
    assert parley_server.query("select published from agents_agent where slug = ?", SLUG) == [(1,)]

    # Copy the snippet with one click: the clipboard holds the exact script tag.
    page.locator("#copy-snippet").click()
    page.locator("#copy-snippet").filter(has_text="Copied").wait_for()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    key = parley_server.query("select publishable_key from agents_agent where slug = ?", SLUG)[0][0]
    assert copied == (
        f'<script src="{parley_server.url}/static/parley/widget.js" data-agent="{SLUG}" '
        f'data-key="{key}" defer></script>'
    )
    assert copied == page.locator("#embed-snippet").inner_text().strip()
    assert not errors, errors
    context.close()
