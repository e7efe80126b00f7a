"""``manage.py role --user NAME --role admin|analyst|none``: give a user a dashboard role."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from parley.platform.dashboard.roles import ROLES, role_assign, role_of


class Command(BaseCommand):
    help = "Give a user a dashboard role (admin configures, analyst reads) or take it away."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--role", required=True, choices=[*ROLES, "none"])

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        User = get_user_model()
        try:
            user = User.objects.get(username=options["user"])
        except User.DoesNotExist as exc:
            raise CommandError(f"no user named {options['user']!r}") from exc
        role_assign(user=user, role=None if options["role"] == "none" else options["role"])
        now = role_of(user) or "no role"
        note = " (a superuser is always an admin)" if user.is_superuser else ""
        self.stdout.write(self.style.SUCCESS(f"{user.username}: {now}{note}"))
