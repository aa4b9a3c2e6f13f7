"""Print the demo's login block once the web server answers (make run's last word)."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.demo.management.commands.load_demo import BANNER_FILE


class Command(BaseCommand):
    help = (
        "Wait until the web server's health answers, print the login block load_demo wrote, then "
        "stay up quietly (honcho stops every process when one exits)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=settings.SITE_URL.rstrip("/") + "/api/v1/health/")
        parser.add_argument("--timeout", type=float, default=120.0)
        parser.add_argument("--exit", action="store_true", help="Exit after printing.")

    def handle(self, *args: Any, **options: Any) -> None:
        deadline = time.monotonic() + options["timeout"]
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(options["url"], timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            time.sleep(1)
        # A moment for the worker's own start-up lines, so the block really is the last thing.
        time.sleep(2)
        banner = settings.VAR_DIR / BANNER_FILE
        text = banner.read_text(encoding="utf-8") if banner.exists() else "(run load_demo)\n"
        rule = "=" * 72
        self.stdout.write(f"\n{rule}\nrolloutdesk is up.\n{text}{rule}\n")
        self.stdout.flush()
        while not options["exit"]:
            time.sleep(3600)
