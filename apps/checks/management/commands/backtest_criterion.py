"""`manage.py backtest_criterion ID`: what a criterion would have done to past releases."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.checks.backtest import backtest, describe
from apps.checks.models import MetricCriterion
from apps.releases.models import Service


class Command(BaseCommand):
    help = "Replay a metric criterion over the stored samples of the last releases of its plan."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("criterion", type=int, help="The criterion's id.")
        parser.add_argument("--releases", type=int, default=10, help="How many (default 10).")
        parser.add_argument("--service", help="Only releases of this service (slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        criterion = (
            MetricCriterion.objects.select_related("metric", "stage_template", "plan")
            .filter(pk=options["criterion"])
            .first()
        )
        if criterion is None:
            raise CommandError(f"No metric criterion {options['criterion']}.")
        if options["releases"] < 1:
            raise CommandError("--releases must be at least 1.")
        service_id = None
        if options["service"]:
            service = Service.objects.filter(slug=options["service"]).first()
            if service is None:
                raise CommandError(f"No service {options['service']!r}.")
            service_id = service.pk
        replays = backtest(criterion, limit=options["releases"], service_id=service_id)
        where = criterion.plan or criterion.stage_template
        self.stdout.write(
            f"Backtest of {criterion.label} (on critical: {criterion.on_critical}) over "
            f"{len(replays)} release(s) of {where}:"
        )
        for line in describe(criterion, replays) or ["  no started release to replay"]:
            self.stdout.write(line)
