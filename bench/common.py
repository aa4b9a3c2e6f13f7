"""What the benchmarks share: the machine report, private servers on free ports, the bench data.

Every benchmark sends load to 127.0.0.1 only, stops by itself (bounded in requests and seconds),
and prints its figures beside a limit measured in the same run on the same machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/{name}"


def setup_django(database_name: str) -> str:
    """Point Django at the bench database (created if missing) and set it up; returns its URL."""
    sys.path.insert(0, str(ROOT))
    url = os.environ.get("DATABASE_URL") or DEFAULT_DB.format(name=database_name)
    name = urlparse(url).path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"Refusing to wipe {name!r}: the bench database's name must contain 'bench'.")
    if url.startswith("postgres"):
        create_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rolloutdesk.settings")
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
    import django

    django.setup()
    return url


def create_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    with psycopg.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def machine_report() -> None:
    """Cores, memory, CPU, and the versions of what is measured."""
    import django
    from django.db import connection

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    database = connection.vendor
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            database = f"PostgreSQL {cursor.fetchone()[0]}"
    load = os.getloadavg()
    print("Machine")
    print(f"  cores           {os.cpu_count()}  ({cpu})")
    print(f"  memory          {memory}")
    print(f"  load average    {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (before the run)")
    print(f"  OS              {platform.platform()}")
    print(f"  Python          {platform.python_version()}")
    print(f"  Django          {django.get_version()}")
    print(f"  database        {database}")
    for tool, args in (("redis-server", ["--version"]), ("wrk", ["--version"])):
        path = shutil.which(tool)
        if path:
            out = subprocess.run([path, *args], capture_output=True, text=True, timeout=10)
            first = (out.stdout or out.stderr).strip().splitlines()[0]
            print(f"  {tool:15} {first[:70]}")
    print()


def free_port() -> int:
    """A free loopback port: from BENCH_PORTS ("8100-8119") when set (a shared machine hands
    each person a range), else any the system gives."""
    span = os.environ.get("BENCH_PORTS", "")
    if span:
        low, high = (int(part) for part in span.split("-"))
        for port in range(low, high + 1):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"No free port in BENCH_PORTS={span}.")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free port (never the machine's shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server).")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rd-bench-redis-") as folder:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(port, 10, process)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(process)


@dataclass
class Web:
    """gunicorn serving rolloutdesk on a free loopback port."""

    url: str
    process: subprocess.Popen


@contextmanager
def gunicorn(database_url: str, broker_url: str, workers: int, **extra_env: str) -> Iterator[Web]:
    """The Procfile's web process (sync workers), production settings, on 127.0.0.1."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "BENCH_FLOOR_VIEW": "true",
        # The per-token rate limit stays on (its cost is measured) but never trips a load test.
        "API_RATE_LIMIT": "1000000000/minute",
        **extra_env,
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    log = tempfile.NamedTemporaryFile(prefix="rd-bench-gunicorn-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "rolloutdesk.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--backlog", "512", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, 30, process)
        yield Web(url=f"http://127.0.0.1:{port}", process=process)
    finally:
        stop(process)
        log.close()
        os.unlink(log.name)


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, object]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


# --- load ------------------------------------------------------------------------------------

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"errors\\": %d, \\"non2xx\\": %d, "
    .. "\\"p50\\": %d, \\"p95\\": %d, \\"p99\\": %d, \\"max\\": %d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


@dataclass
class Load:
    """One load run's figures (latencies in milliseconds)."""

    clients: int
    requests: int
    seconds: float
    errors: int
    p50: float
    p95: float
    p99: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load(url: str, *, clients: int, seconds: float, headers: dict[str, str]) -> Load:
    """Send GETs to one URL from `clients` concurrent connections for `seconds` (wrk, or Python)."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("Load goes to 127.0.0.1 only.")
    if shutil.which("wrk"):
        return _wrk(url, clients=clients, seconds=seconds, headers=headers)
    return _python_load(url, clients=clients, seconds=seconds, headers=headers)


def _wrk(url: str, *, clients: int, seconds: float, headers: dict[str, str]) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        command = ["wrk", f"-t{min(2, clients)}", f"-c{clients}", f"-d{seconds:.0f}s",
                   "--timeout", "10s", "-s", script.name]  # fmt: skip
        # gunicorn's sync workers close every connection; wrk must expect it or it stalls.
        for name, value in {"Connection": "close", **headers}.items():
            command += ["-H", f"{name}: {value}"]
        out = subprocess.run(
            [*command, url], capture_output=True, text=True, timeout=seconds + 60
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    data = json.loads(line[5:])
    return Load(
        clients=clients,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"] + data["non2xx"],
        p50=data["p50"] / 1000,
        p95=data["p95"] / 1000,
        p99=data["p99"] / 1000,
    )


def _python_load(url: str, *, clients: int, seconds: float, headers: dict[str, str]) -> Load:
    """Fallback without wrk: threads with keep-alive http.client connections."""
    import http.client
    import threading

    parsed = urlparse(url)
    path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        mine: list[float] = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status < 300
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except OSError:
                ok = False
                conn.close()
            mine.append(time.perf_counter() - started)
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    elapsed = time.monotonic() - started
    latencies.sort()
    return Load(
        clients=clients,
        requests=len(latencies),
        seconds=elapsed,
        errors=errors[0],
        p50=percentile(latencies, 50) * 1000,
        p95=percentile(latencies, 95) * 1000,
        p99=percentile(latencies, 99) * 1000,
    )


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


# --- data ------------------------------------------------------------------------------------

METRICS = [
    # key, kind, bad direction, typical value
    ("error_rate", "ratio", "higher", 0.01),
    ("p95_latency_seconds", "gauge", "higher", 1.5),
    ("cross_contamination_count", "counter", "higher", 0.0),
    ("quality_score", "gauge", "lower", 4.2),
]


def fill(*, releases: int, running: int, samples: int, services: int = 20) -> dict[str, object]:
    """Wipe the bench database and fill it with bulk SQL: `releases` releases of which `running`
    are in progress, and about `samples` metric samples spread over the running ones' last hours.

    The releases are written in bulk (the rows register_release + start would write: release,
    stages copied from the plan, current stage, events), not one by one through the product,
    so that setup time stays bounded; the product code is what the benchmarks then measure.
    """
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.api.models import ApiToken
    from apps.checks.models import MetricCriterion, MetricDefinition
    from apps.releases.models import Environment, RolloutPlan, Service, StageTemplate

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        plan = RolloutPlan.objects.create(name="Bench progressive", slug="bench")
        for position, (name, pct, soak, auto) in enumerate(
            [("5%", 5, 2, False), ("10%", 10, 2, True), ("25%", 25, 2, True),
             ("50%", 50, 2, False), ("100%", 100, 1, False)]
        ):  # fmt: skip
            StageTemplate.objects.create(
                plan=plan, position=position, name=name, traffic_percentage=pct,
                min_soak=timedelta(days=soak), auto_advance=auto,
            )  # fmt: skip
        metrics = {
            key: MetricDefinition.objects.create(key=key, name=key, kind=kind, bad_direction=bad)
            for key, kind, bad, _ in METRICS
        }
        rules = [
            dict(metric=metrics["error_rate"], warning_threshold=0.02, critical_threshold=0.05,
                 for_window=timedelta(minutes=5), on_critical="rollback"),
            dict(metric=metrics["p95_latency_seconds"], warning_threshold=3, critical_threshold=5,
                 for_window=timedelta(minutes=5), on_critical="pause"),
            dict(metric=metrics["cross_contamination_count"], critical_threshold=0,
                 min_samples=0, on_critical="rollback"),
            dict(metric=metrics["quality_score"], comparator="<", critical_threshold=2.0,
                 for_window=timedelta(minutes=5), on_critical="rollback"),
        ]  # fmt: skip
        for rule in rules:
            MetricCriterion.objects.create(plan=plan, **rule)
        environment = Environment.objects.create(
            name="Production", slug="production", is_production=True
        )
        made = [
            Service.objects.create(name=f"Service {n:02d}", slug=f"svc-{n:02d}", default_plan=plan)
            for n in range(services)
        ]
        _, key = ApiToken.issue("bench", made)
    finished = releases - running
    with connection.cursor() as cursor:
        # Finished releases over the past year, then the running ones (newest ids).
        cursor.execute(
            """
            INSERT INTO releases_release (service_id, environment_id, version, plan_id,
                commit_sha, changelog_url, author_name, status, stage_count, created_at, started_at,
                finished_at, updated_at)
            SELECT %(first_service)s + (n %% %(services)s), %(environment)s,
                   '1.' || n, %(plan)s, md5(n::text), '', 'bench',
                   CASE WHEN n > %(finished)s THEN 'in_progress'
                        WHEN n %% 10 = 0 THEN 'rolled_back' ELSE 'completed' END,
                   5,
                   %(now)s - ((%(releases)s - n) * interval '50 minutes') - interval '3 days',
                   %(now)s - ((%(releases)s - n) * interval '50 minutes') - interval '3 days',
                   CASE WHEN n > %(finished)s THEN NULL
                        ELSE %(now)s - ((%(releases)s - n) * interval '50 minutes') END,
                   %(now)s
            FROM generate_series(1, %(releases)s) AS n
            """,
            {"first_service": made[0].pk, "services": services, "environment": environment.pk,
             "plan": plan.pk, "finished": finished, "releases": releases, "now": now},
        )  # fmt: skip
        cursor.execute(
            """
            INSERT INTO releases_stage (release_id, position, name, traffic_percentage, min_soak,
                auto_advance, status, entered_at, exited_at, paused_for, min_requests, template_id,
                environment_id, commit_sha)
            SELECT r.id, t.position, t.name, t.traffic_percentage, t.min_soak, t.auto_advance,
                   CASE WHEN r.status = 'completed' THEN 'passed'
                        WHEN r.status = 'rolled_back' AND t.position = 1 THEN 'rolled_back'
                        WHEN r.status = 'rolled_back' AND t.position = 0 THEN 'passed'
                        WHEN r.status = 'in_progress' AND t.position = 1 THEN 'active'
                        WHEN r.status = 'in_progress' AND t.position = 0 THEN 'passed'
                        WHEN r.status = 'rolled_back' THEN 'skipped'
                        ELSE 'pending' END,
                   CASE WHEN r.status = 'completed' OR t.position <= 1
                        THEN r.started_at + t.position * interval '10 hours' END,
                   CASE WHEN r.status = 'completed' OR t.position = 0
                             OR (r.status = 'rolled_back' AND t.position = 1)
                        THEN r.started_at + (t.position + 1) * interval '10 hours' END,
                   interval '0', 0, t.id, COALESCE(t.environment_id, r.environment_id),
                   -- The commit a stage ran on is stamped when it is entered.
                   CASE WHEN r.status = 'completed' OR t.position <= 1 THEN r.commit_sha
                        ELSE '' END
            FROM releases_release r CROSS JOIN releases_stagetemplate t
            WHERE t.plan_id = %(plan)s
            """,
            {"plan": plan.pk},
        )
        cursor.execute(
            """
            UPDATE releases_release r SET current_stage_id = s.id
            FROM releases_stage s
            WHERE s.release_id = r.id
              AND s.position = CASE WHEN r.status = 'completed' THEN 4 ELSE 1 END
            """
        )
        # Some release's running stage entered two days and a bit ago: soak done for many.
        cursor.execute(
            """
            UPDATE releases_stage SET entered_at = %(now)s - (release_id %% 72) * interval '1 hour'
            WHERE status = 'active'
            """,
            {"now": now},
        )
        cursor.execute(
            """
            INSERT INTO releases_event (release_id, stage_id, verb, actor_kind, actor_name,
                reason, data, created_at)
            SELECT r.id, NULL, v.verb, 'system', 'system:bench', '', '{}'::jsonb,
                   r.created_at + v.k * interval '10 hours'
            FROM releases_release r
            CROSS JOIN (VALUES ('created', 0), ('started', 0), ('advanced', 1)) AS v(verb, k)
            """
        )
    stored = copy_samples(
        running_ids(), metrics={k: m.pk for k, m in metrics.items()}, samples=samples, now=now
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "seconds": time.perf_counter() - started,
        "samples": stored,
        "token": key,
        "plan": plan,
        "now": now,
    }


def running_ids() -> list[int]:
    from apps.releases.models import Release

    return list(Release.objects.in_progress().order_by("pk").values_list("pk", flat=True))


def copy_samples(
    release_ids: list[int], *, metrics: dict[str, int], samples: int, now: object
) -> int:
    """COPY about `samples` rows: every (release, metric) one sample a minute, newest last."""
    from django.db import connection

    if not release_ids or samples <= 0:
        return 0
    typical = {key: value for key, _, _, value in METRICS}
    series = [(r, key) for r in release_ids for key in metrics]
    minutes = max(1, samples // len(series))
    rows = 0
    with connection.cursor() as cursor:
        raw = cursor.connection  # psycopg 3
        with raw.cursor().copy(
            "COPY checks_sample (release_id, metric_id, variant, at, value, count, received_at)"
            " FROM STDIN"
        ) as copy:
            for minute in range(minutes, 0, -1):
                at = now - timedelta(minutes=minute) + timedelta(seconds=17)
                stamp = at.isoformat()
                for index, (release_id, key) in enumerate(series):
                    base = typical[key]
                    # A deterministic wobble around the typical value; nothing breaches.
                    value = base * (1 + ((index * 7 + minute * 13) % 11 - 5) / 100)
                    count = "1000" if key == "error_rate" else "\\N"
                    copy.write(
                        f"{release_id}\t{metrics[key]}\ttreatment\t{stamp}\t{value}\t"
                        f"{count}\t{stamp}\n"
                    )
                    rows += 1
    return rows


def fmt_ms(value: float) -> str:
    return f"{value:7.1f}"
