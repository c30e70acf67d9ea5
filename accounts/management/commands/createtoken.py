"""``manage.py createtoken USERNAME [--name N] [--create]``: print a new API
token for a user. The token is shown once; only its hash is kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts import tokens


class Command(BaseCommand):
    help = "Create an API token for a user and print it (once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")
        parser.add_argument(
            "--expires-days",
            type=float,
            default=None,
            help="the token stops working after this many days (default: never)",
        )
        parser.add_argument(
            "--superuser",
            action="store_true",
            help="make the user a superuser (every permission; a dev stack's operator)",
        )
        parser.add_argument(
            "--create",
            action="store_true",
            help="create the user (without a password) if missing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = options["username"]
        user = User.objects.filter(username=username).first()
        if user is None:
            if not options["create"]:
                raise CommandError(f"no user {username!r} (use --create to make one)")
            user = User.objects.create_user(username=username)
            user.set_unusable_password()
            user.save()
            self.stderr.write(f"created user {username}")

        expires_at = None
        if options["expires_days"] is not None:
            if options["expires_days"] <= 0:
                raise CommandError("--expires-days must be positive")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        if options["superuser"] and not user.is_superuser:
            user.is_superuser = user.is_staff = True
            user.save(update_fields=["is_superuser", "is_staff"])
        row, token = tokens.mint(user, options["name"], expires_at)
        self.stderr.write(
            f"token {row.prefix} for {username}; it will not be shown again:"
        )
        # The token alone on the last line of stdout, for scripts.
        self.stdout.write(token)
