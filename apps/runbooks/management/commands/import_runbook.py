"""`manage.py import_runbook FILE [--service SLUG] [--name NAME] [--dry-run] [--json]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.actors import Actor
from apps.releases.models import Service
from apps.runbooks.draft import Draft
from apps.runbooks.parsing import parse
from apps.runbooks.saving import ImportRefused, save_checklists_only, save_draft
from apps.runbooks.text import MAX_BYTES, RunbookError, too_large


class Command(BaseCommand):
    help = (
        "Import a Markdown runbook: its checklists, rollout plan (stages, traffic, soaks), metric "
        "criteria and escalation levels. With --dry-run nothing is saved; --json prints the "
        "draft as one JSON object. Saving needs --service: everything is written in one "
        "transaction and linked to that service, or nothing is."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The Markdown runbook (UTF-8; up to 2 MB).")
        parser.add_argument("--service", help="Slug of the service the import configures.")
        parser.add_argument("--name", help="Name for the plan and checklists (default: title).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Save nothing; show what would be created."
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help='Print the draft as one JSON object: {"title", "notes", "checklists", "plan", '
            '"criteria", "escalation"} (see docs/runbooks.md).',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        data = _read(path)
        try:
            draft = parse(data, source=path.name, name=options["name"])
        except RunbookError as exc:
            raise CommandError(exc.message) from exc
        if options["json"]:
            self.stdout.write(json.dumps(draft.as_json(), ensure_ascii=False, indent=2))
        else:
            for note in draft.notes:
                self.stderr.write(self.style.WARNING(f"Note: {note}"))
        if options["dry_run"]:
            if not options["json"]:
                self.stdout.write(f"Dry run: nothing saved. {path.name} would give:")
                for line in draft.summary():
                    self.stdout.write(line)
            return
        slug = options["service"]
        if not slug:
            self._checklists_only(draft, quiet=options["json"])
            return
        service = Service.objects.filter(slug=slug).first()
        if service is None:
            raise CommandError(f"No service with the slug {slug!r}.")
        try:
            saved = save_draft(draft, service=service, actor=Actor.system("import_runbook"))
        except ImportRefused as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if not options["json"]:
            for line in saved.describe():
                self.stdout.write(self.style.SUCCESS(line))

    def _checklists_only(self, draft: Draft, *, quiet: bool) -> None:
        try:
            saved = save_checklists_only(draft, actor=Actor.system("import_runbook"))
        except ImportRefused as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if quiet:
            return
        for line in saved:
            self.stdout.write(self.style.SUCCESS(f"Imported {line}."))
        if draft.plan.stages or draft.criteria or draft.escalation.levels:
            self.stderr.write(
                self.style.WARNING(
                    "Only the checklists were saved: the plan, criteria and escalation levels "
                    "configure a service; import again with --service SLUG to save them."
                )
            )


def _read(path: Path) -> bytes:
    """The file's bytes, refusing a missing or too large file before reading it all."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise CommandError(too_large(path.name, size))
        return path.read_bytes()
    except IsADirectoryError as exc:
        raise CommandError(f"{path} is a directory, not a runbook file.") from exc
    except FileNotFoundError as exc:
        raise CommandError(f"No such file: {path}") from exc
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from exc
