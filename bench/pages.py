"""Benchmark: dashboard and release page server time and queries, 10,000 releases, 5M samples.

Not a test. Fills its own database with bulk SQL and COPY (10,000 releases over a year, 1,000 of
them running with four metrics sampled every minute: 5 million samples by default), keeps every
running release's gate verdict (apps.rollouts.verdicts, as the product does on each change),
then renders each page in this process through Django's full request path (middleware, session
login, templates; DEBUG off) as a release manager, several times, and prints the median and
worst server time and the query count. The dashboard is measured at its default page (100
releases), with all 1,000 on one page, filtered and paged. Beside them, in the same run: the
framework floor (a constant JSON view through the same middleware) and the sign-in page (a
template, no queries).

    .venv/bin/python bench/pages.py                        # rd_bench_pages on 127.0.0.1:5432
    .venv/bin/python bench/pages.py --samples 1000000 --repeat 5
    .venv/bin/python bench/pages.py --reuse                # measure what the last run filled

It wipes and fills its own database: the database name must contain "bench".
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from common import fill, machine_report, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--running", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="Measure the data already there.")
    args = parser.parse_args()
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "k" * 50)
    os.environ["BENCH_FLOOR_VIEW"] = "true"
    setup_django("rd_bench_pages")
    machine_report()
    if args.reuse:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)  # the code may have moved on since the fill
    else:
        data = fill(releases=args.releases, running=args.running, samples=args.samples)
        print(f"Filled in {data['seconds']:.0f}s")
        keep_verdicts()

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from apps.checks.models import Sample
    from apps.releases.models import Release
    from apps.releases.roles import RELEASE_MANAGERS, ensure_roles
    from tests.factories import UserFactory

    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'checks_sample'")
        samples = cursor.fetchone()[0]
    print(f"Data: {Release.objects.count():,} releases ({Release.objects.in_progress().count()} "
          f"running), about {samples:,} samples\n")  # fmt: skip

    ensure_roles()
    from django.contrib.auth.models import Group, User

    rita = User.objects.filter(username="bench-rita").first() or UserFactory(
        username="bench-rita", is_staff=True
    )
    rita.groups.add(Group.objects.get(name=RELEASE_MANAGERS))
    client = Client()
    client.force_login(rita)
    running = Release.objects.in_progress().order_by("-pk").first()
    finished = Release.objects.filter(status="completed").order_by("pk").first()
    in_window = Sample.objects.filter(release=running).count()
    targets = [
        ("floor: constant JSON view", "/bench/floor/"),
        ("sign-in page (template, no queries)", "/accounts/login/"),
        ("dashboard / (100 of the running per page)", "/"),
        ("dashboard, all running on one page", "/?per=1000"),
        ("dashboard, red gates only", "/?gate=red"),
        ("dashboard, one service, 2nd page of 20", "/?service=svc-03&per=20&page=2"),
        ("dashboard, by urgency, 5th page", "/?order=urgency&page=5"),
        (f"release page, running ({in_window:,} samples)", f"/releases/{running.pk}/"),
        ("release page, running, 7-day chart range", f"/releases/{running.pk}/?range=7d"),
        ("release page, completed a year ago", f"/releases/{finished.pk}/"),
    ]
    rows = []
    from django.conf import settings

    plain_static = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with override_settings(
        ALLOWED_HOSTS=["testserver"],
        SECURE_SSL_REDIRECT=False,
        # No collectstatic for a bench: static names without the production manifest.
        STORAGES={**settings.STORAGES, "staticfiles": plain_static},
    ):
        for label, path in targets:
            status = client.get(path).status_code  # warm caches and imports
            times = []
            for _ in range(args.repeat):
                connection.queries_log.clear()
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
            db_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
            rows.append((label, status, statistics.median(times), max(times), len(queries), db_ms))
    print(f"{args.repeat} renders each, in process (DEBUG off), as a release manager; ms\n")
    print(f"{'page':46} {'status':>6} {'median':>8} {'worst':>8} {'queries':>8} {'in SQL':>8}")
    for label, status, median, worst, queries, db_ms in rows:
        print(f"{label:46} {status:6d} {median:8.1f} {worst:8.1f} {queries:8d} {db_ms:8.1f}")
    boards = [row for row in rows if row[0].startswith("dashboard")]
    template = next(row for row in rows if row[0].startswith("sign-in"))
    counts = sorted({row[4] for row in boards})
    everything = next(row for row in boards if "all running" in row[0])
    print(
        f"\ndashboard: {Release.objects.active().count():,} running of "
        f"{Release.objects.count():,}, {'-'.join(map(str, counts))} queries on every filter and "
        f"page, median {boards[0][2]:.0f} ms (100 per page) and {everything[2]:.0f} ms (all on "
        f"one page), worst {max(row[3] for row in boards):.0f} ms; template-only page "
        f"{template[2]:.1f} ms"
    )


def keep_verdicts() -> None:
    """Keep the gate verdict of every unfinished release, as each change's commit does."""
    from apps.releases.choices import ReleaseStatus
    from apps.releases.models import Release
    from apps.rollouts import verdicts

    started = time.perf_counter()
    ids = list(
        Release.objects.exclude(status__in=ReleaseStatus.finished()).values_list("pk", flat=True)
    )
    verdicts.refresh(ids)
    print(f"Kept {len(ids):,} gate verdicts in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
