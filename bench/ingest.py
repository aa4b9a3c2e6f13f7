"""Benchmark: POST /api/v1/samples/ in batches of 1,000 and 10,000, beside PostgreSQL COPY.

Not a test. Starts a Redis of its own and gunicorn (production settings) on free loopback ports,
fills its own database with running releases, then for each batch size: COPYs the very rows the
API will be sent into checks_sample (same table, same indexes and constraints; rolled back), the
physical limit, and POSTs them through the API (JSON, token, validation, all-or-nothing insert).
Bounded: a fixed number of batches, each request with a timeout.

    .venv/bin/python bench/ingest.py                   # rd_bench_ingest on 127.0.0.1:5432
    .venv/bin/python bench/ingest.py --samples 50000 --clients 1 2

It wipes and fills its own database: the database name must contain "bench".
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
import urllib.request
from datetime import timedelta

from common import fill, gunicorn, machine_report, private_redis, running_ids, setup_django

BATCHES = (1_000, 10_000)


def rows_for(
    release_ids: list[int], metrics: list[str], count: int, offset: int, now: object
) -> list[dict]:
    """`count` samples for distinct (release, metric, at), starting at item `offset`."""
    rows = []
    n = offset
    while len(rows) < count:
        release = release_ids[n % len(release_ids)]
        metric = metrics[(n // len(release_ids)) % len(metrics)]
        second = n // (len(release_ids) * len(metrics))
        at = now - timedelta(hours=6) + timedelta(seconds=second)
        rows.append(
            {"release": release, "metric": metric, "value": 0.01 + (n % 7) / 1000,
             "count": 500, "at": at.isoformat()}
        )  # fmt: skip
        n += 1
    return rows


def copy_rate(rows: list[dict], metric_ids: dict[str, int]) -> float:
    """Samples/s for COPY of the rows into checks_sample, in a transaction then rolled back."""
    from django.db import connection
    from django.utils import timezone

    received = timezone.now().isoformat()
    text = io.StringIO()
    for row in rows:
        text.write(
            f"{row['release']}\t{metric_ids[row['metric']]}\ttreatment\t{row['at']}\t"
            f"{row['value']}\t{row['count']}\t{received}\n"
        )
    payload = text.getvalue()
    raw = connection.cursor().connection
    raw.autocommit = False
    started = time.perf_counter()
    with raw.cursor().copy(
        "COPY checks_sample (release_id, metric_id, variant, at, value, count, received_at)"
        " FROM STDIN"
    ) as copy:
        copy.write(payload)
    elapsed = time.perf_counter() - started
    raw.rollback()
    raw.autocommit = True
    return len(rows) / elapsed


def post_all(url: str, token: str, bodies: list[bytes], clients: int) -> tuple[float, list[int]]:
    """POST every body, `clients` at a time; returns (seconds, statuses)."""
    statuses: list[int] = []
    lock = threading.Lock()
    queue = list(bodies)

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            request = urllib.request.Request(
                url, data=body, method="POST",
                headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    code = response.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            with lock:
                statuses.append(code)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return time.perf_counter() - started, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=int, default=60_000, help="Per batch size and client count."
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--releases", type=int, default=200)
    args = parser.parse_args()

    database_url = setup_django("rd_bench_ingest")
    machine_report()
    data = fill(releases=args.releases, running=args.releases, samples=0)
    from apps.checks.models import MetricDefinition, Sample

    metric_ids = dict(MetricDefinition.objects.values_list("key", "pk"))
    metrics = sorted(metric_ids)
    ids = running_ids()
    print(f"Data: {len(ids)} running releases, {len(metrics)} metrics\n")

    lines = []
    offset = 0
    with private_redis() as broker, gunicorn(database_url, broker, args.workers) as web:
        url = f"{web.url}/api/v1/samples/"
        warm = rows_for(ids, metrics, 100, 10_000_000, data["now"])
        post_all(url, data["token"], [json.dumps(warm).encode()] * 1, 1)
        for batch in BATCHES:
            for clients in args.clients:
                total = max(batch * clients, args.samples // batch * batch)
                rows = rows_for(ids, metrics, total, offset, data["now"])
                offset += total
                limit = copy_rate(rows, metric_ids)
                bodies = [json.dumps(rows[i : i + batch]).encode() for i in range(0, total, batch)]
                before = Sample.objects.count()
                seconds, statuses = post_all(url, data["token"], bodies, clients)
                stored = Sample.objects.count() - before
                bad = [s for s in statuses if s != 201]
                lines.append((batch, clients, total, stored, total / seconds, limit, bad))
    print(f"gunicorn --workers {args.workers} (sync); COPY: same rows, same table, rolled back\n")
    print(f"{'batch':>7} {'clients':>7} {'samples':>8} {'stored':>8} {'API samples/s':>14} "
          f"{'COPY samples/s':>15} {'of COPY':>8} {'refused':>7}")  # fmt: skip
    for batch, clients, total, stored, rate, limit, bad in lines:
        print(f"{batch:7,d} {clients:7d} {total:8,d} {stored:8,d} {rate:14,.0f} {limit:15,.0f} "
              f"{rate / limit * 100:7.0f}% {len(bad):7d}")  # fmt: skip
    best = max(rate for _, _, _, _, rate, _, _ in lines)
    print(f"\nAim: >= 25,000 samples/s end to end; best here {best:,.0f} samples/s.")


if __name__ == "__main__":
    main()
