"""`manage.py export_config [--service S] > rollout.yaml`: the rollout configuration as YAML."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.configuration.documents import dump
from apps.configuration.export import ExportError, export


class Command(BaseCommand):
    help = (
        "Write plans, criteria, sources (without secrets), checklist templates, sign-off rules, "
        "freeze windows and escalation policies as one YAML document."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--service", help="Only what this service's rollouts use (slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            document = export(options["service"])
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(dump(document), ending="")
