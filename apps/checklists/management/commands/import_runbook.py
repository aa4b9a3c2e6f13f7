"""`manage.py import_runbook FILE [--name NAME] [--dry-run] [--json]`: runbook -> templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.checklists import runbook
from apps.checklists.services import ChecklistError, import_runbook
from apps.core.actors import Actor


class Command(BaseCommand):
    help = (
        "Import the task lists of a Markdown runbook as checklist templates: one template per "
        "checklist found (pre-deployment, post-deployment, weekly review, ...). Importing a name "
        "that exists adds a new version; running releases keep the copy they have."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The Markdown runbook (UTF-8; up to 2 MB).")
        parser.add_argument(
            "--name",
            help="Template name (several checklists in the file: 'NAME: <their heading>').",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Save nothing; show what would be created."
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help='Print JSON: [{"name", "kind", "sections": [{"name", "items": '
            '[{"text", "key"}]}]}] (with --dry-run nothing is saved).',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        data = _read(path)
        try:
            parsed = runbook.parse(data, source=path.name, name=options["name"])
        except runbook.RunbookError as exc:
            raise CommandError(exc.message) from exc
        for note in parsed.notes:
            self.stderr.write(self.style.WARNING(f"Note: {note}"))

        if not options["dry_run"]:
            try:
                results = import_runbook(parsed, actor=Actor.system("import_runbook"))
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
            except ChecklistError as exc:
                raise CommandError(exc.message) from exc
        if options["json"]:
            self.stdout.write(json.dumps(parsed.as_json(), ensure_ascii=False, indent=2))
            return
        if options["dry_run"]:
            self.stdout.write(f"Dry run: nothing saved. {path.name} would give:")
            for checklist in parsed.checklists:
                self.stdout.write(
                    f"- {checklist.name} [{checklist.kind}]: {checklist.item_count} items "
                    f"in {len(checklist.sections)} section(s)"
                )
                for section in checklist.sections:
                    self.stdout.write(f"    {section.name}")
                    for item in section.items:
                        key = f"  (key: {item.key})" if item.key else ""
                        self.stdout.write(f"      [ ] {item.text}{key}")
            return
        for result in results:
            self.stdout.write(self.style.SUCCESS(f"Imported {result.describe()}."))


def _read(path: Path) -> bytes:
    """The file's bytes, refusing a missing or too large file before reading it all."""
    try:
        size = path.stat().st_size
        if size > runbook.MAX_BYTES:
            raise CommandError(runbook.too_large(path.name, size))
        return path.read_bytes()
    except IsADirectoryError as exc:
        raise CommandError(f"{path} is a directory, not a runbook file.") from exc
    except FileNotFoundError as exc:
        raise CommandError(f"No such file: {path}") from exc
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from exc
