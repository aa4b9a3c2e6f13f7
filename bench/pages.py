"""Benchmark: dashboard and release page server time and queries, 10,000 releases, 5M samples.

Not a test. Fills its own database with bulk SQL and COPY (10,000 releases over a year, 200 of
them running with four metrics sampled every minute: 5 million samples by default), then renders
each page in this process through Django's full request path (middleware, session login,
templates; DEBUG off) as a release manager, several times, and prints the median and worst
server time and the query count. Beside them, in the same run: the framework floor (a constant
JSON view through the same middleware) and the sign-in page (a template, no queries).

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
    parser.add_argument("--running", type=int, default=200)
    parser.add_argument("--samples", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="Measure the data already there.")
    args = parser.parse_args()
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "k" * 50)
    os.environ["BENCH_FLOOR_VIEW"] = "true"
    setup_django("rd_bench_pages")
    machine_report()
    if not args.reuse:
        data = fill(releases=args.releases, running=args.running, samples=args.samples)
        print(f"Filled in {data['seconds']:.0f}s")

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
    from django.contrib.auth.models import Group

    rita = UserFactory(username="bench-rita", is_staff=True)
    rita.groups.add(Group.objects.get(name=RELEASE_MANAGERS))
    client = Client()
    client.force_login(rita)
    running = Release.objects.in_progress().order_by("-pk").first()
    finished = Release.objects.filter(status="completed").order_by("pk").first()
    in_window = Sample.objects.filter(release=running).count()
    targets = [
        ("floor: constant JSON view", "/bench/floor/"),
        ("sign-in page (template, no queries)", "/accounts/login/"),
        ("dashboard /", "/"),
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


if __name__ == "__main__":
    main()
