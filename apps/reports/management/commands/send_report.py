"""Generate (and send) the report of one period: backfills, previews and one-off sends."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from apps.releases.models import Service
from apps.reports import services
from apps.reports.choices import Frequency
from apps.reports.schedule import period_containing, validate_time_zone


class Command(BaseCommand):
    help = (
        "Generate the daily or weekly report of the period containing --date, store it and send "
        "it to the subscribers of its kind and scope (or to --to addresses). --dry-run prints "
        "the plain-text report and stores and sends nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", required=True, choices=Frequency.values)
        parser.add_argument(
            "--date", required=True, help="A day of the period, YYYY-MM-DD (weeks start Monday)."
        )
        parser.add_argument("--service", default="", help="A service's slug; omit for all.")
        parser.add_argument(
            "--time-zone",
            default="",
            help=f"Days and weeks in this zone (default {settings.TIME_ZONE}).",
        )
        parser.add_argument(
            "--to",
            action="append",
            default=[],
            help="Send to this address (repeatable) instead of the subscribers.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print, store and send nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["date"])
        except ValueError as exc:
            raise CommandError(
                f"--date {options['date']!r} is not a date like 2026-11-16."
            ) from exc
        time_zone = options["time_zone"] or settings.TIME_ZONE
        try:
            validate_time_zone(time_zone)
            for address in options["to"]:
                validate_email(address)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        service = None
        if options["service"]:
            service = Service.objects.filter(slug=options["service"]).first()
            if service is None:
                known = ", ".join(Service.objects.values_list("slug", flat=True)) or "none"
                raise CommandError(f"No service {options['service']!r} (known: {known}).")
        period = period_containing(options["period"], day, time_zone)

        if options["dry_run"]:
            draft = services.generate(service, period)
            self.stdout.write(f"Subject: {draft.subject}\n\n{draft.text}")
            self.stdout.write(
                f"(dry run: nothing stored or sent; {len(draft.charts)} charts drawn)"
            )
            return

        with transaction.atomic():
            report, generated = services.obtain_report(service, period)
            if options["to"]:
                recipients = [(address, None) for address in options["to"]]
            else:
                recipients = services.recipients_for(report)
            made = services.add_recipients(report, recipients)
        what = "Generated" if generated else "Found"
        self.stdout.write(
            f"{what} report #{report.pk}: {report.subject}\n"
            f"Queued {len(made)} delivery(ies)"
            + (f" to {', '.join(d.address for d in made)}" if made else " (every recipient had it)")
        )
