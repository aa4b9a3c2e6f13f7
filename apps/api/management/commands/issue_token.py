"""python manage.py issue_token SERVICE_SLUG [SERVICE_SLUG ...] --name NAME"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.api.models import ApiToken
from apps.releases.models import Service


class Command(BaseCommand):
    help = "Create an API token for one or more services and print its key (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("services", nargs="+", metavar="SERVICE_SLUG")
        parser.add_argument(
            "--name", required=True, help="What the token is for, e.g. 'github-ci'."
        )

    def handle(self, *args: Any, services: list[str], name: str, **options: Any) -> None:
        found = {s.slug: s for s in Service.objects.filter(slug__in=services)}
        missing = [slug for slug in services if slug not in found]
        if missing:
            known = ", ".join(Service.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"Unknown service(s): {', '.join(missing)}. Known: {known}.")
        token, key = ApiToken.issue(name, [found[slug] for slug in services])
        self.stdout.write(f"Token {token.name!r} for {', '.join(services)}.")
        self.stdout.write("Key (shown only once, store it as a CI secret):")
        self.stdout.write(key)
