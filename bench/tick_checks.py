"""Benchmark: one metric-check tick over 500 in-progress releases × 5 criteria, 1M samples stored.

Not a test: it prints time and query count for the tick, beside a baseline measured in the same
run (the tick's pre-existing work, auto-advance, without the checks) and the same checks over 50
releases, to show that the number of queries does not grow with the number of releases.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rd_bench .venv/bin/python bench/tick_checks.py
    .venv/bin/python bench/tick_checks.py            # SQLite file under var/ (slower to fill)

It wipes and fills its own database: the database name must contain "bench".
Options: --releases 500 --samples 1000000.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rolloutdesk.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
if "DATABASE_URL" not in os.environ:
    (ROOT / "var").mkdir(exist_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{ROOT / 'var' / 'bench-tick-checks.sqlite3'}"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.checks.choices import BadDirection, MetricKind, Variant  # noqa: E402
from apps.checks.models import (  # noqa: E402
    CheckNotification,
    CheckRun,
    MetricCriterion,
    MetricDefinition,
    Sample,
)
from apps.core.actors import Actor  # noqa: E402
from apps.releases.models import (  # noqa: E402
    Environment,
    Release,
    RolloutPlan,
    Service,
    StageTemplate,  # noqa: E402
)
from apps.rollouts import transitions  # noqa: E402
from apps.rollouts.breach_response import evaluate_and_act, run_checks  # noqa: E402
from apps.rollouts.registration import register_release  # noqa: E402
from apps.rollouts.ticks import auto_advance_due  # noqa: E402

METRICS = [
    ("error_rate", MetricKind.RATIO, BadDirection.HIGHER, 0.01),
    ("p95_latency_seconds", MetricKind.GAUGE, BadDirection.HIGHER, 1.5),
    ("cross_contamination_count", MetricKind.COUNTER, BadDirection.HIGHER, 0.0),
    ("quality_score", MetricKind.GAUGE, BadDirection.LOWER, 4.2),
]


def fill(releases: int, samples: int) -> None:
    """A fresh database with `releases` running releases and `samples` samples."""
    name = str(connection.settings_dict["NAME"])
    if "bench" not in name:
        sys.exit(f"Refusing to wipe {name!r}: the bench database's name must contain 'bench'.")
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    plan = RolloutPlan.objects.create(name="Bench", slug="bench")
    StageTemplate.objects.create(
        plan=plan, position=0, name="canary", traffic_percentage=10, min_soak=timedelta(days=2)
    )
    metrics = {
        key: MetricDefinition.objects.create(key=key, name=key, kind=kind, bad_direction=bad)
        for key, kind, bad, _ in METRICS
    }
    rules = [
        dict(metric=metrics["error_rate"], warning_threshold=0.02, critical_threshold=0.05,
             for_window=timedelta(minutes=5), on_critical="rollback"),
        dict(metric=metrics["p95_latency_seconds"], warning_threshold=3, critical_threshold=5,
             for_window=timedelta(minutes=5), on_critical="pause"),
        dict(metric=metrics["cross_contamination_count"], critical_threshold=0, min_samples=0,
             on_critical="rollback"),
        dict(metric=metrics["quality_score"], comparator="<", critical_threshold=2.0,
             for_window=timedelta(minutes=5), on_critical="rollback"),
        dict(metric=metrics["error_rate"], reference="control", tolerance="absolute",
             critical_threshold=0.0, significance_test="z-test", for_window=timedelta(minutes=5),
             on_critical="pause"),
    ]  # fmt: skip
    for rule in rules:
        MetricCriterion.objects.create(plan=plan, **rule)
    service = Service.objects.create(name="Bench", slug="bench", default_plan=plan)
    environment = Environment.objects.create(name="Production", slug="production")
    system = Actor.system("bench")
    started = time.perf_counter()
    for n in range(releases):
        release, _ = register_release(
            service=service, environment=environment, version=f"1.0.{n}", actor=system
        )
        transitions.start(release, actor=system)
    print(f"  {releases} releases registered and started in {time.perf_counter() - started:.1f}s")

    # Every (release, metric) gets a sample per minute, newest last, control for error_rate too.
    ids = list(Release.objects.values_list("id", flat=True))
    series = [(r, key, Variant.TREATMENT) for r in ids for key, *_ in METRICS]
    series += [(r, "error_rate", Variant.CONTROL) for r in ids]
    per_series = max(1, samples // len(series))
    now = timezone.now().replace(second=0, microsecond=0)
    rng = random.Random(7)
    base = {key: value for key, _, _, value in METRICS}
    batch: list[Sample] = []
    stored = 0
    started = time.perf_counter()
    for minute in range(per_series):
        at = now - timedelta(minutes=minute + 1) + timedelta(seconds=17)
        for release_id, key, variant in series:
            value = base[key] * (1 + rng.gauss(0, 0.05)) if base[key] else 0.0
            batch.append(
                Sample(
                    release_id=release_id,
                    metric=metrics[key],
                    variant=variant,
                    at=at,
                    value=value,
                    count=1000 if key == "error_rate" else None,
                )
            )
        if len(batch) >= 20_000:
            Sample.objects.bulk_create(batch, batch_size=5_000)
            stored += len(batch)
            batch = []
    Sample.objects.bulk_create(batch, batch_size=5_000)
    stored += len(batch)
    print(f"  {stored:,} samples stored in {time.perf_counter() - started:.1f}s")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def measure(label: str, work) -> tuple[str, int, float, object]:
    connection.queries_log.clear()  # filling the database overflowed the log's 9,000 entries
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = work()
        elapsed = time.perf_counter() - started
    return label, len(queries), elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument(
        "--reuse", action="store_true", help="Measure the data a previous run left, unfilled."
    )
    args = parser.parse_args()
    print(f"Database: {connection.vendor} {connection.settings_dict['NAME']}")
    if not args.reuse:
        fill(args.releases, args.samples)
    print(f"  {Sample.objects.count():,} samples in the table")

    releases = list(
        Release.objects.in_progress()
        .select_related("service", "environment", "current_stage")
        .order_by("pk")
    )
    import scipy.stats  # noqa: F401  (loaded once up front: the first z-test would pay for it)

    # Measure as of just after the newest sample (a reused database's data ends in the past),
    # on a clean history.
    newest = Sample.objects.order_by("-at").values_list("at", flat=True).first()
    now = max(newest + timedelta(seconds=43), timezone.now()) if not args.reuse else newest
    now = now + timedelta(seconds=43) if args.reuse else now
    CheckNotification.objects.all().delete()
    CheckRun.objects.all().delete()
    rows = [
        measure("baseline: tick without checks (auto-advance)", auto_advance_due),
        measure(
            f"checks over {len(releases[:50])} releases",
            lambda: evaluate_and_act(releases[:50], now=now),
        ),
        measure(
            f"checks over {len(releases)} releases",
            lambda: evaluate_and_act(releases, now=now + timedelta(minutes=1)),
        ),
        measure(
            "whole tick over every release (checks + auto-advance)",
            lambda: (run_checks(now=now + timedelta(minutes=2)), auto_advance_due())[0],
        ),
    ]
    print()
    print(f"{'':56} {'queries':>8} {'seconds':>8} {'results':>8} {'acted':>6}")
    for label, count, elapsed, result in rows:
        results = getattr(result, "results", "")
        acted = ""
        if hasattr(result, "paused"):
            acted = len(result.paused) + len(result.rolled_back) + result.notified
        print(f"{label:56} {count:8d} {elapsed:8.2f} {results!s:>8} {acted!s:>6}")
    small, large = rows[1][1], rows[2][1]
    verdict = "does not grow" if small == large else f"GREW from {small} to {large}"
    print(f"\nQuery count with {len(releases)} releases instead of 50: {verdict}.")


if __name__ == "__main__":
    main()
