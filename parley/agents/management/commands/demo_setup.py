"""``manage.py demo_setup``: the hospital scenario, the simulator pool, the demo agent, the
dashboard roles and two logins (``admin`` superuser, ``analyst`` read-only)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from parley.agents.models import Agent
from parley.agents.services import agent_create, model_pool_simulator_ensure, scenario_install
from parley.platform.dashboard.roles import ANALYST, role_assign, roles_ensure

AGENT_SLUG = "hospital-receptionist"
#: Pages that may embed the demo agent's widget: this server under either local name.
DEMO_ORIGINS = "http://127.0.0.1:8000\nhttp://localhost:8000"
PROMPT = (
    "You are the virtual receptionist of a hospital, answering callers on the phone. "
    "Speak in short, natural sentences without lists or markdown: everything you say is read "
    "aloud. Use the tools to look up and change patients' appointments, medications, lab "
    "results, referrals and emergency contacts; never invent data. Confirm before changing "
    "anything."
)


class Command(BaseCommand):
    help = "Install the hospital scenario and the hospital-receptionist agent (idempotent)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--admin-user", default="admin")
        parser.add_argument("--admin-password", default="parley-demo")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        scenario = scenario_install(slug="hospital")
        pool = model_pool_simulator_ensure()
        if not Agent.objects.filter(slug=AGENT_SLUG).exists():
            agent_create(
                slug=AGENT_SLUG,
                name="Hospital receptionist",
                scenario=scenario,
                model_pool=pool,
                prompt=PROMPT,
            )
        agent = Agent.objects.get(slug=AGENT_SLUG)
        if not agent.allowed_origins.strip():
            agent.allowed_origins = DEMO_ORIGINS
            agent.save(update_fields=["allowed_origins", "updated_at"])
        roles_ensure()
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=options["admin_user"], defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(options["admin_password"])
            user.save()
        analyst, analyst_created = User.objects.get_or_create(username="analyst")
        if analyst_created:
            analyst.set_password(options["admin_password"])
            analyst.save()
            role_assign(user=analyst, role=ANALYST)
        self.stdout.write(
            self.style.SUCCESS(f"agent {AGENT_SLUG} ready (scenario hospital, LLM simulator)")
        )
        if created:
            self.stdout.write(
                f"admin login: {options['admin_user']} / {options['admin_password']} (created)"
            )
        if analyst_created:
            self.stdout.write(
                f"analyst login (read-only dashboard): analyst / {options['admin_password']} "
                "(created)"
            )
