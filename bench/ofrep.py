"""Benchmark: OpenFeature evaluations (OFREP), single and bulk, under load, beside the floor.

Not a test. Like bench/api.py: starts a Redis of its own and gunicorn (the Procfile's web
process, production settings) on free loopback ports against PostgreSQL, fills its own database
(20 services, `--releases` releases of which `--running` hold traffic in production), and sends
from 10 and 50 concurrent clients for a bounded time each:

- the framework floor, a plain Django view answering a constant JSON document (GET /bench/floor/);
- `POST /ofrep/v1/evaluate/flags/svc-00`, one flag, a new `targetingKey` on every request (what
  an application's OpenFeature SDK sends per user);
- `POST /ofrep/v1/evaluate/flags`, the bulk call: every flag of the token (20) for a new unit;
- the bulk call again with `If-None-Match` of the last answer (a provider's cache revalidating):
  304, no body.

wrk is required (`apt-get install wrk`): it sends the POST bodies from a Lua script.

    .venv/bin/python bench/ofrep.py                      # rd_bench_ofrep on 127.0.0.1:5432
    .venv/bin/python bench/ofrep.py --seconds 5 --workers 3

It wipes and fills its own database: the database name must contain "bench".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import (
    WRK_SCRIPT,
    Load,
    fill,
    gunicorn,
    load,
    machine_report,
    private_redis,
    setup_django,
)

CLIENTS = (10, 50)
# Every request a new unit, as an application asks for each of its users.
POST_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", nil, nil, '{"context":{"targetingKey":"user-' .. n .. '"}}')
end
"""

# A revalidation: always the unit the ETag was made for.
FIXED_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"context":{"targetingKey":"user-1"}}'
"""


def post_load(url: str, *, clients: int, seconds: float, headers: dict[str, str]) -> Load:
    """POST an evaluation context from `clients` connections for `seconds` (wrk)."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("Load goes to 127.0.0.1 only.")
    fixed = "If-None-Match" in headers  # a revalidation: the same unit as the tag's
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if fixed:
            script.write(FIXED_SCRIPT)
        else:
            script.write(POST_SCRIPT)
        script.write(WRK_SCRIPT)
    try:
        command = ["wrk", f"-t{min(2, clients)}", f"-c{clients}", f"-d{seconds:.0f}s",
                   "--timeout", "10s", "-s", script.name]  # fmt: skip
        all_headers = {"Connection": "close", "Content-Type": "application/json", **headers}
        for name, value in all_headers.items():
            command += ["-H", f"{name}: {value}"]
        out = subprocess.run(
            [*command, url], capture_output=True, text=True, timeout=seconds + 60
        ).stdout
    finally:
        os.unlink(script.name)
    data = json.loads(next(x for x in out.splitlines() if x.startswith("JSON "))[5:])
    # wrk counts a 304 as a non-2xx answer: a revalidation's 304 is its success.
    errors = data["errors"] + (0 if fixed else data["non2xx"])
    return Load(
        clients=clients,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        p50=data["p50"] / 1000,
        p95=data["p95"] / 1000,
        p99=data["p99"] / 1000,
    )


def post(url: str, body: dict, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="Per measurement (bounded).")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (Procfile: 3).")
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--running", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk): it sends the POSTs.")

    database_url = setup_django("rd_bench_ofrep")
    machine_report()
    data = fill(releases=args.releases, running=args.running, samples=1000)
    print(f"Data: {args.releases:,} releases ({args.running} holding traffic in production, over "
          f"20 services), filled in {data['seconds']:.1f}s")  # fmt: skip
    headers = {"Authorization": f"Bearer {data['token']}"}

    rows = []
    with private_redis() as broker, gunicorn(database_url, broker, args.workers) as web:
        single = f"{web.url}/ofrep/v1/evaluate/flags/svc-00"
        bulk = f"{web.url}/ofrep/v1/evaluate/flags"
        context = {"context": {"targetingKey": "user-1"}}
        status, answer_headers, body = post(bulk, context, headers)
        flags = json.loads(body)["flags"]
        assert status == 200 and len(flags) == 20, (status, body[:300])
        split = sum(flag["reason"] == "SPLIT" for flag in flags)
        status, _, body = post(single, context, headers)
        assert status == 200, (status, body[:300])
        print(f"One evaluation: {body.decode()}")
        print(f"Bulk: {len(flags)} flags ({split} split), {len(json.dumps(flags)):,} bytes\n")
        revalidate = {**headers, "If-None-Match": answer_headers["ETag"]}
        assert post(bulk, context, revalidate)[0] == 304
        targets = [
            ("floor: plain Django JSON view (GET)", "get", f"{web.url}/bench/floor/", {}),
            ("OFREP single flag", "post", single, headers),
            (f"OFREP bulk ({len(flags)} flags)", "post", bulk, headers),
            ("OFREP bulk, If-None-Match: 304", "post", bulk, revalidate),
        ]
        for _, method, url, hdrs in targets:  # warm every worker's connections and imports
            measure = load if method == "get" else post_load
            measure(url, clients=args.workers * 2, seconds=2, headers=hdrs)
        for clients in CLIENTS:
            for label, method, url, hdrs in targets:
                measure = load if method == "get" else post_load
                rows.append(
                    (label, measure(url, clients=clients, seconds=args.seconds, headers=hdrs))
                )
                time.sleep(0.5)
    print(f"gunicorn --workers {args.workers} (sync), {args.seconds:.0f}s per line; "
          "latencies in ms\n")  # fmt: skip
    print(f"{'endpoint':36} {'clients':>7} {'req/s':>8} {'evals/s':>8} {'of floor':>8} "
          f"{'p50':>7} {'p95':>7} {'p99':>7} {'errors':>6}")  # fmt: skip
    floor: dict[int, float] = {}
    for label, figures in rows:
        if label.startswith("floor"):
            floor[figures.clients] = figures.rps
        per_request = len(flags) if label.startswith("OFREP bulk (") else 1
        evals = figures.rps * per_request if label.startswith("OFREP") else 0
        share = figures.rps / floor[figures.clients] * 100 if floor.get(figures.clients) else 0
        print(
            f"{label:36} {figures.clients:7d} {figures.rps:8.0f} {evals:8.0f} {share:7.0f}% "
            f"{figures.p50:7.1f} {figures.p95:7.1f} {figures.p99:7.1f} {figures.errors:6d}"
        )
    at50 = {label: f for label, f in rows if f.clients == 50}
    one = at50["OFREP single flag"]
    many = next(f for label, f in at50.items() if label.startswith("OFREP bulk ("))
    print(
        f"\nOFREP at 50 clients: single {one.rps:.0f} evaluations/s "
        f"({one.rps / floor[50] * 100:.0f}% of the floor's {floor[50]:.0f} req/s, p95 "
        f"{one.p95:.1f} ms); bulk {many.rps * len(flags):.0f} evaluations/s "
        f"({many.rps:.0f} req/s x {len(flags)} flags, {many.rps / floor[50] * 100:.0f}% of the "
        f"floor, p95 {many.p95:.1f} ms)"
    )


if __name__ == "__main__":
    main()
