"""`manage.py apply_config FILE [--dry-run]`: show the diff and apply it in one transaction."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.configuration.apply import ConfigError, apply
from apps.configuration.documents import load
from apps.core.actors import Actor


class Command(BaseCommand):
    help = "Make the database match a configuration file (see export_config); - reads stdin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The YAML (or JSON) file; - for standard input.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show the changes, apply nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {name}: {exc.strerror}.") from exc
        try:
            # The command line is the operator's: SQL sources may change here.
            result = apply(
                load(text),
                actor=Actor.system("apply_config"),
                dry_run=options["dry_run"],
                allow_sql=True,
            )
        except ConfigError as exc:
            raise CommandError(
                f"{name}: nothing applied, {len(exc.errors)} problem(s):\n  "
                + "\n  ".join(exc.errors)
            ) from exc
        for change in result.changes:
            self.stdout.write(change.line())
        count = len(result.changes)
        if not count:
            self.stdout.write("No changes: the database already matches the file.")
        elif options["dry_run"]:
            self.stdout.write(f"Dry run: {count} change(s) would be applied; nothing was.")
        else:
            self.stdout.write(f"Applied {count} change(s) in one transaction.")
