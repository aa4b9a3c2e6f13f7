"""Demo traffic: keeps feeding the demo's running releases with samples, as a real service would.

`make run` starts it (Procfile.dev: `traffic: python manage.py demo_traffic`) so the demo stays
alive: without it, the samples load_demo wrote age out of the criteria's windows within minutes
and every demo release turns red ("0 sample(s) in 5m"). The samples go through the same ingest
as `POST /api/v1/samples/`. One release drifts: its p95 latency climbs a quarter of a second a
minute from the moment the feeder starts, past the 3 s warning after a few minutes and the 5 s
critical a few minutes later, so the tick pauses it (the criterion's action) while a newcomer
watches. Only demo services are fed; off outside the demo (the command refuses with DEBUG off).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apps.checks.choices import MetricKind, Variant
from apps.checks.models import MetricDefinition
from apps.checks.samples import ingest
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release

from .metrics import HEALTHY, SAMPLES_BY_SERVICE

# The release that drifts toward a breach: (service slug, version), its metric and the drift.
DRIFTING = ("ai-orchestra", "2.4.0")
DRIFT_METRIC = "p95_latency_seconds"
DRIFT_START = 1.8  # seconds, healthy
DRIFT_PER_MINUTE = 0.25  # → warning (> 3 s) after ~5 minutes, critical (> 5 s) after ~13


@dataclass
class Feeder:
    """One feeder process: when it started (the drift's origin) and its random source."""

    started: datetime
    services: frozenset[str]
    rng: random.Random

    def value(self, release: Release, key: str, base: float, now: datetime) -> float:
        if (release.service.slug, release.version) == DRIFTING and key == DRIFT_METRIC:
            minutes = (now - self.started).total_seconds() / 60
            return DRIFT_START + DRIFT_PER_MINUTE * minutes
        return base

    def rows(self, release: Release, kinds: dict[str, str], now: datetime) -> list[dict[str, Any]]:
        """One sample per metric and variant at `now`, with realistic noise and request counts."""
        profile = SAMPLES_BY_SERVICE.get(release.service.slug, HEALTHY)
        at = now.isoformat().replace("+00:00", "Z")
        rows: list[dict[str, Any]] = []
        for key, (base, requests) in profile.items():
            drifted = self.value(release, key, base, now)
            for variant, shift in ((Variant.TREATMENT, 1.0), (Variant.CONTROL, 0.9)):
                # The control never drifts: it is the old version.
                value = drifted if variant == Variant.TREATMENT else base
                noisy = value * shift * (1 + self.rng.gauss(0, 0.02))
                if kinds.get(key) == MetricKind.RATIO:
                    noisy = min(1.0, max(0.0, noisy))
                row = {"release": release.pk, "metric": key, "variant": variant, "at": at}
                row["value"] = round(noisy, 5)
                if requests:
                    # Traffic follows the stage: more requests as the release widens.
                    share = max(release.traffic_percentage, 1) / 100
                    row["count"] = max(1, int(requests * shift * share * 4))
                rows.append(row)
        if "cross_contamination_count" in kinds:
            rows.append(
                {
                    "release": release.pk,
                    "metric": "cross_contamination_count",
                    "variant": Variant.TREATMENT,
                    "at": at,
                    "value": 0,
                }
            )
        return rows

    def feed(self, now: datetime) -> int:
        """Push one round of samples for every running demo release; how many were stored."""
        releases = list(
            Release.objects.filter(
                status__in=ReleaseStatus.active(), service__slug__in=self.services
            ).select_related("service")
        )
        if not releases:
            return 0
        kinds = dict(MetricDefinition.objects.values_list("key", "kind"))
        rows = [row for release in releases for row in self.rows(release, kinds, now)]
        outcome = ingest(rows, service_ids=None, now=now)
        return outcome.accepted - outcome.duplicates


def feeder(started: datetime, services: frozenset[str], seed: int = 0) -> Feeder:
    return Feeder(started=started, services=services, rng=random.Random(seed))


DEFAULT_INTERVAL = timedelta(seconds=30)
