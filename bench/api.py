"""Benchmark: the CI pipeline's hot reads, GET /releases/{id}/gate/ and /traffic/, under load.

Not a test. Starts a Redis of its own and gunicorn (the Procfile's web process, production
settings) on free loopback ports against PostgreSQL, fills its own database with bulk SQL, and
sends GETs from 1, 10 and 50 concurrent clients (wrk when installed, else Python threads) for a
bounded time each. Every figure stands beside the framework floor measured in the same run: a
plain Django view answering a constant JSON document (/bench/floor/, mounted only when
BENCH_FLOOR_VIEW=true) on the same gunicorn, same middleware.

    .venv/bin/python bench/api.py                      # rd_bench_api on 127.0.0.1:5432
    .venv/bin/python bench/api.py --seconds 5 --workers 3 --releases 1000 --samples 200000
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rd_bench_api .venv/bin/python bench/api.py

It wipes and fills its own database: the database name must contain "bench".
"""

from __future__ import annotations

import argparse
import time

from common import fill, gunicorn, load, machine_report, private_redis, setup_django

CLIENTS = (1, 10, 50)


def profile_gate(release_id: int, headers: dict[str, str]) -> None:
    """The queries one gate request makes, in this process (DEBUG query log)."""
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import override_settings

    client = Client(HTTP_AUTHORIZATION=headers["Authorization"])
    with override_settings(DEBUG=True, ALLOWED_HOSTS=["testserver"], SECURE_SSL_REDIRECT=False):
        for path in (
            f"/api/v1/releases/{release_id}/gate/",
            f"/api/v1/releases/{release_id}/traffic/",
        ):
            client.get(path)  # warm
            reset_queries()
            started = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            queries = connection.queries
            total = sum(float(q["time"]) for q in queries) * 1000
            print(f"  {path}: {response.status_code}, {len(queries)} queries "
                  f"({total:.1f} ms in the database), {elapsed:.1f} ms in process")  # fmt: skip
            for query in queries:
                print(f"      {float(query['time']) * 1000:5.1f} ms  {query['sql'][:110]}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="Per measurement (bounded).")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (Procfile: 3).")
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--running", type=int, default=100)
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true", help="Print the gate's queries.")
    args = parser.parse_args()

    database_url = setup_django("rd_bench_api")
    machine_report()
    data = fill(releases=args.releases, running=args.running, samples=args.samples)
    print(f"Data: {args.releases:,} releases ({args.running} running), {data['samples']:,} "
          f"samples, filled in {data['seconds']:.1f}s")  # fmt: skip

    from apps.releases.models import Release
    from apps.rollouts import gate, verdicts

    release = Release.objects.in_progress().with_related().order_by("-pk").first()
    verdict = gate.evaluate(release)
    print(f"Measured release: #{release.pk} at {release.current_stage.name}, gate "
          f"{'green' if verdict.can_advance else 'red: ' + verdict.summary}\n")  # fmt: skip
    # Bulk SQL filled the tables: keep the verdicts as the product's writes would have.
    started = time.perf_counter()
    verdicts.refresh([], service_ids=None)
    print(f"Kept verdicts of every unfinished release computed in "
          f"{time.perf_counter() - started:.1f}s\n")  # fmt: skip
    etag = verdicts.read(release.pk).etag
    headers = {"Authorization": f"Token {data['token']}"}
    polled = {**headers, "If-None-Match": etag}
    profile_gate(release.pk, headers) if args.profile else None

    rows = []
    with private_redis() as broker, gunicorn(database_url, broker, args.workers) as web:
        targets = [
            ("floor: plain Django JSON view", f"{web.url}/bench/floor/", {}),
            ("GET /releases/{id}/traffic/", f"{web.url}/api/v1/releases/{release.pk}/traffic/",
             headers),
            ("GET /releases/{id}/gate/", f"{web.url}/api/v1/releases/{release.pk}/gate/", headers),
            ("GET gate/ If-None-Match (304)", f"{web.url}/api/v1/releases/{release.pk}/gate/",
             polled),
        ]  # fmt: skip
        for _, url, hdrs in targets:  # warm every worker's connections and imports
            load(url, clients=args.workers * 2, seconds=2, headers=hdrs)
        for clients in CLIENTS:
            for label, url, hdrs in targets:
                rows.append((label, load(url, clients=clients, seconds=args.seconds, headers=hdrs)))
                time.sleep(0.5)
    print(f"gunicorn --workers {args.workers} (sync), {args.seconds:.0f}s per line; "
          "latencies in ms\n")  # fmt: skip
    print(f"{'endpoint':34} {'clients':>7} {'req/s':>8} {'of floor':>8} {'p50':>7} {'p95':>7} "
          f"{'p99':>7} {'errors':>6}")  # fmt: skip
    floor = {}
    for label, figures in rows:
        if label.startswith("floor"):
            floor[figures.clients] = figures.rps
        share = figures.rps / floor[figures.clients] * 100 if floor.get(figures.clients) else 0
        print(
            f"{label:34} {figures.clients:7d} {figures.rps:8.0f} {share:7.0f}% "
            f"{figures.p50:7.1f} {figures.p95:7.1f} {figures.p99:7.1f} {figures.errors:6d}"
        )
    at50 = {label: f for label, f in rows if f.clients == 50}
    gate50 = at50["GET /releases/{id}/gate/"]
    traffic50 = at50["GET /releases/{id}/traffic/"]
    polled50 = at50["GET gate/ If-None-Match (304)"]
    print(f"\nA poller sending its ETag back (304, no body): {polled50.rps / floor[50] * 100:.0f}% "
          f"of the floor, p95 {polled50.p95:.1f} ms at 50 clients.")  # fmt: skip
    print("Aim: gate and traffic at >= 50% of the floor's throughput, p95 < 50 ms at 50 clients.")
    # The Must-show line (issue 16), last: both beside the floor of this same run.
    print(f"gate: {gate50.rps / floor[50] * 100:.0f}% of the floor, p95 {gate50.p95:.0f} ms at 50 "
          f"clients; traffic: {traffic50.rps / floor[50] * 100:.0f}% of the floor, p95 "
          f"{traffic50.p95:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
