"""Benchmark: one whole tick (metric checks + auto-advance) over 100, 1,000 and 5,000 releases.

Not a test. For each size, fills its own database with bulk SQL (that many in-progress releases,
four criteria on their plan, about 30 minutes of per-minute samples for every release and
metric), then runs the tick's task body in this process, as a worker would, and counts its
queries and seconds. Beside it, in the same run: the floor, the tick over the same database with
no release in progress (its fixed cost). Growth should be no worse than linear: the
seconds-per-release column should stay flat and the query count should not follow the releases.

    .venv/bin/python bench/tick_scale.py                 # rd_bench_tick on 127.0.0.1:5432
    .venv/bin/python bench/tick_scale.py --sizes 100 1000 5000 --minutes 30

It wipes and fills its own database: the database name must contain "bench".
"""

from __future__ import annotations

import argparse
import collections
import time
from datetime import timedelta

from common import fill, machine_report, setup_django


def measure(work) -> tuple[int, float, object]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Django keeps the last 9,000 queries only; a breaching tick makes more.
    connection.queries_log = collections.deque(maxlen=10_000_000)
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = work()
        elapsed = time.perf_counter() - started
    return len(queries), elapsed, result


def add_history(minutes: int, now: object) -> int:
    """Past ticks' check runs for every running release, one per minute, with SQL."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO checks_checkrun (release_id, stage_id, trigger, slot, claim, started_at,
                finished_at, verdict, action)
            SELECT r.id, r.current_stage_id, 'tick', s.at, gen_random_uuid(), s.at, s.at,
                   'pass', ''
            FROM releases_release r
            CROSS JOIN (SELECT date_trunc('minute', %(now)s::timestamptz)
                               - m * interval '1 minute' AS at
                        FROM generate_series(1, %(minutes)s) AS m) AS s
            WHERE r.status = 'in_progress'
            """,
            {"now": now, "minutes": minutes},
        )
        made = cursor.rowcount
        cursor.execute("ANALYZE checks_checkrun")
    return made


def breaching_tick(size: int, minutes: int, without_gathering: bool) -> tuple:
    """The tick when every release breaches: each is rolled back and gets a breach incident,
    every one in a transaction of its own; an incident changes every gate of its service."""
    import contextlib

    import time_machine
    from django.db import connection

    from apps.releases import gate_inputs
    from apps.rollouts.tasks import tick

    data = fill(releases=size, running=size, samples=size * 4 * minutes)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE checks_sample SET value = 0.09 FROM checks_metricdefinition m "
            "WHERE m.id = checks_sample.metric_id AND m.key = 'error_rate'"
        )
    from apps.releases.models import Release

    gathered = gate_inputs.gathered
    if without_gathering:
        gate_inputs.gathered = contextlib.nullcontext
    try:
        # The criterion acts once the breach has lasted its window (5 minutes of ticks): tick
        # each minute until it does, and measure the tick that rolls back. From 8 minutes
        # before the newest sample, so that every tick's window holds the breaching samples.
        start = data["now"] - timedelta(minutes=8)
        for minute in range(9):
            with time_machine.travel(start + timedelta(minutes=minute, seconds=30)):
                queries, seconds, result = measure(tick.run)
            if Release.objects.filter(status="rolled_back").exists():
                break
    finally:
        gate_inputs.gathered = gathered
    done = Release.objects.filter(status="rolled_back").count()
    how = "per commit" if without_gathering else "gathered"
    return (f"{size:,} breaching: {done:,} rolled back ({how})", size, queries, seconds, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--minutes", type=int, default=30, help="Samples per series.")
    parser.add_argument(
        "--history-minutes",
        type=int,
        default=0,
        help="Check runs already recorded per release (1440: a day of ticks) before measuring.",
    )
    parser.add_argument(
        "--breaching",
        type=int,
        default=100,
        help="Then: a fresh fill of this many in-progress releases, every one breaching its "
        "error-rate rollback (0: skip). The tick rolls each back and opens its incident.",
    )
    parser.add_argument(
        "--without-gathering",
        action="store_true",
        help="Recompute kept verdicts at every commit of the breaching tick, as before "
        "gate_inputs.gathered() (to show what it is for).",
    )
    parser.add_argument(
        "--without-claim-index",
        action="store_true",
        help="Drop the check runs' claim index first (to show what it is for).",
    )
    args = parser.parse_args()
    setup_django("rd_bench_tick")
    machine_report()
    import scipy.stats  # noqa: F401  (the first z-test would otherwise pay for the import)
    import time_machine
    from django.db import connection

    from apps.releases.models import Release, Stage
    from apps.rollouts.tasks import tick

    rows = []
    for size in args.sizes:
        data = fill(releases=size, running=size, samples=size * 4 * args.minutes)
        print(f"  {size:,} running releases, {data['samples']:,} samples: filled in "
              f"{data['seconds']:.1f}s")  # fmt: skip
        with connection.cursor() as cursor:
            if args.without_claim_index:
                cursor.execute("DROP INDEX IF EXISTS checkrun_claim")
            else:  # a previous run --without-claim-index dropped it behind migrate's back
                cursor.execute(
                    "CREATE INDEX IF NOT EXISTS checkrun_claim ON checks_checkrun "
                    "(claim) WHERE claim IS NOT NULL"
                )
        if args.history_minutes:
            made = add_history(args.history_minutes, data["now"])
            print(f"  {made:,} earlier check runs recorded (the last {args.history_minutes} ticks)")
        # Steady state: every release soaking (entered its stage an hour ago), so the tick
        # evaluates every criterion and advances nothing.
        Stage.objects.filter(status="active").update(entered_at=data["now"] - timedelta(hours=1))
        # As of just after the newest sample, so every window has its data. A first tick
        # keeps every gate's verdict (their first check results change them all); the one
        # measured is the next minute's, the steady state.
        with time_machine.travel(data["now"] + timedelta(seconds=20), tick=True):
            tick.run()
        with time_machine.travel(data["now"] + timedelta(seconds=80), tick=True):
            queries, seconds, result = measure(tick.run)
        rows.append((f"tick over {size:,} in-progress releases", size, queries, seconds, result))
        if size == 1000:
            # One release in ten past its soak: auto-advance asks the gate for each (their
            # criteria have no passing history over the soak, so the gate holds them).
            due = list(Release.objects.in_progress().values_list("pk", flat=True)[::10])
            Stage.objects.filter(status="active", release_id__in=due).update(
                entered_at=data["now"] - timedelta(days=3)
            )
            with time_machine.travel(data["now"] + timedelta(seconds=140), tick=True):
                queries, seconds, result = measure(tick.run)
            rows.append((f"  same, {len(due)} past their soak", size, queries, seconds, result))
        if size == args.sizes[0]:
            # The floor: the same tick with nothing in progress (what it costs to look).
            Release.objects.update(status="completed")
            with time_machine.travel(data["now"] + timedelta(seconds=200), tick=True):
                queries, seconds, result = measure(tick.run)
            rows.insert(0, ("floor: tick with no release in progress", 0, queries, seconds, result))
    if args.breaching:
        rows.append(breaching_tick(args.breaching, args.minutes, args.without_gathering))
    print()
    print(f"{'':42} {'releases':>8} {'queries':>8} {'seconds':>8} {'ms/release':>10} "
          f"{'advanced':>8}")  # fmt: skip
    for label, size, queries, seconds, result in rows:
        per = f"{seconds / size * 1000:10.2f}" if size else f"{'':10}"
        print(f"{label:42} {size:8,d} {queries:8d} {seconds:8.2f} {per} "
              f"{result.get('advanced', 0):8d}")  # fmt: skip
    by_size = {size: secs for label, size, _, secs, _ in rows if label.startswith("tick")}
    if 1000 in by_size:
        print(f"\nAim: 1,000 releases in under 2 s: {by_size[1000]:.2f} s.")


if __name__ == "__main__":
    main()
