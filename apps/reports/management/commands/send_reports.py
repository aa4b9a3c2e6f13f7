"""Run the scheduled report task once: report to due subscriptions, retry failed sends."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.reports import services


class Command(BaseCommand):
    help = "Send the reports that are due now (what the every-5-minutes task does), once."

    def handle(self, *args: Any, **options: Any) -> None:
        run = services.send_due()
        self.stdout.write(
            f"Claimed {len(run.claimed)} due subscription(s) ({run.raced} taken by another "
            f"worker), generated {run.reports_generated} report(s), queued {run.deliveries} "
            f"delivery(ies); failed sends are retried by the outbox sweep."
        )
