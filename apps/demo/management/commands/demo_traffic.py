"""Feed the demo's running releases with samples every 30 seconds (make run starts it)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.demo.management.commands.load_demo import SERVICES
from apps.demo.traffic import DEFAULT_INTERVAL, DRIFTING, feeder


class Command(BaseCommand):
    help = (
        "Push realistic samples for the demo's running releases every --interval seconds "
        "(one release drifts toward a latency breach, so the tick pauses it). Demo only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL.total_seconds())
        parser.add_argument("--rounds", type=int, default=0, help="Stop after N rounds (0: never).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_traffic feeds demo data; it runs only with DEBUG on.")
        services = frozenset(slug for slug, *_ in SERVICES)
        feed = feeder(timezone.now(), services)
        service, version = DRIFTING
        self.stdout.write(
            f"Demo traffic: samples for the running demo releases every {options['interval']:g}s; "
            f"{service} {version}'s p95 latency drifts toward its 5 s pause threshold."
        )
        rounds = 0
        while True:
            feed.feed(timezone.now())
            rounds += 1
            if options["rounds"] and rounds >= options["rounds"]:
                return
            time.sleep(options["interval"])
