"""Dashboard support code: the prompt diff, ``manage.py role``, demo_setup's logins."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from parley.agents.models import Agent
from parley.platform.dashboard.diff import prompt_diff
from parley.platform.dashboard.roles import ADMIN, ANALYST, role_of


def test_diff_pairs_changed_lines_and_marks_words() -> None:
    diff = prompt_diff("Be kind.\nBe brief.", "Be kind.\nBe very brief.\nSmile.")
    kinds = [row.kind for row in diff.rows]
    assert kinds == ["equal", "changed", "added"]
    changed = diff.rows[1]
    assert "".join(s.text for s in changed.new.segments) == "Be very brief."
    assert [s.text.strip() for s in changed.new.segments if s.changed] == ["very"]
    assert all(not s.changed for s in changed.old.segments)
    assert (changed.old.number, changed.new.number) == (2, 2)
    assert (diff.added, diff.removed) == (2, 1)


def test_diff_folds_long_unchanged_runs() -> None:
    lines = [f"line {i}" for i in range(20)]
    diff = prompt_diff("\n".join(lines), "\n".join([*lines[:10], "new", *lines[10:]]))
    kinds = [row.kind for row in diff.rows]
    assert kinds == ["gap", "equal", "equal", "equal", "added", "equal", "equal", "equal", "gap"]
    assert diff.rows[0].folded == 7 and diff.rows[-1].folded == 7
    assert prompt_diff("same", "same").identical


@pytest.mark.django_db
def test_role_command_assigns_and_removes_roles() -> None:
    user = get_user_model().objects.create_user(username="kim", password="x" * 12)
    call_command("role", "--user", "kim", "--role", "analyst")
    assert role_of(user) == ANALYST
    call_command("role", "--user", "kim", "--role", "admin")
    assert role_of(user) == ADMIN
    assert list(user.groups.values_list("name", flat=True)) == ["admin"]
    call_command("role", "--user", "kim", "--role", "none")
    assert role_of(user) is None
    with pytest.raises(CommandError, match="no user named"):
        call_command("role", "--user", "ghost", "--role", "admin")


@pytest.mark.django_db
def test_demo_setup_creates_the_roles_an_analyst_and_demo_origins() -> None:
    call_command("demo_setup", stdout=open("/dev/null", "w"))  # noqa: SIM115
    analyst = get_user_model().objects.get(username="analyst")
    assert analyst.check_password("parley-demo") and role_of(analyst) == ANALYST
    assert role_of(get_user_model().objects.get(username="admin")) == ADMIN
    agent = Agent.objects.get(slug="hospital-receptionist")
    assert agent.allowed_origin_list == ["http://127.0.0.1:8000", "http://localhost:8000"]
    # Origins an admin set are kept on a second run.
    Agent.objects.filter(pk=agent.pk).update(allowed_origins="https://clinic.example")
    call_command("demo_setup", stdout=open("/dev/null", "w"))  # noqa: SIM115
    agent.refresh_from_db()
    assert agent.allowed_origins == "https://clinic.example"


def test_template_filters() -> None:
    import datetime as dt

    from parley.platform.dashboard.templatetags.dashboard import ago, duration, ms

    assert (ms(None), ms(412.6), ms(12000)) == ("—", "413 ms", "12,000 ms")
    assert duration(dt.timedelta(seconds=65)) == "1 min 05 s"
    assert duration(dt.timedelta(hours=1, minutes=2)) == "1 h 02 min"
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
    assert ago(now - dt.timedelta(seconds=20), now) == "just now"
    assert ago(now - dt.timedelta(minutes=5), now) == "5 min ago"
    assert ago(now - dt.timedelta(days=1, hours=1), now) == "1 day ago"
    assert ago(now - dt.timedelta(days=30), now) == "Feb 8, 2026"


@pytest.mark.django_db
def test_new_agent_page_says_what_is_missing_on_an_empty_server(client) -> None:  # noqa: ANN001
    user = get_user_model().objects.create_superuser("root", "", "x" * 12)
    client.force_login(user)
    page = client.get("/dashboard/agents/new/").content.decode()
    assert "This server has no scenario and no model pool yet." in page
    assert "manage.py demo_setup" in page
