"""/metrics under the documented deploy: gunicorn with several workers (Procfile's `web`). Every
worker answers the same figures, and a change made elsewhere (here: by this test, as by a Celery
worker on another machine) shows in every worker's next answer. Figures kept in each process
(prometheus-client's default registry without PROMETHEUS_MULTIPROC_DIR) would differ from one
worker to the next; the access log's pids show the scrapes were spread over the workers.

The scrapes go out several at a time: one after another, the worker that just answered is often
the one back in accept() first, and the kernel may hand it every connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.jobs.models import JobRun, RunOutcome
from apps.releases.models import Release
from tests.factories import make_release

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "gunicorn-workers-scrape-token-0123"
WORKERS = 3
SCRAPES = 12
ROUNDS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn(postgres, transactional_db, tmp_path: Path):
    """gunicorn on the test database, forked workers, each its own connection."""
    db = connection.settings_dict
    url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    port = free_port()
    log = tmp_path / "access.log"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "true",
        "METRICS_TOKEN": TOKEN,
        "ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "rolloutdesk.settings",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "rolloutdesk.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={WORKERS}",
            f"--access-logfile={log}",
            "--access-logformat=%(p)s %(U)s %(s)s",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "gunicorn.err").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v1/health/", timeout=2).close()
                break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("gunicorn did not start:\n" + (tmp_path / "gunicorn.err").read_text())
            time.sleep(0.3)
        yield base, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def scrape(base: str) -> dict[tuple, float]:
    request = urllib.request.Request(
        f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        # The two figures that move by themselves: the scrape's own cost and the jobs' lag.
        if s.name not in {"rolloutdesk_scrape_duration_seconds", "rolloutdesk_job_lag_seconds"}
    }


def scrape_at_once(base: str) -> list[dict[tuple, float]]:
    """SCRAPES scrapes in flight together, so busy workers leave the rest to the others."""
    with ThreadPoolExecutor(max_workers=SCRAPES) as pool:
        return list(pool.map(lambda _: scrape(base), range(SCRAPES)))


def answering_pids(log: Path) -> set[str]:
    return {line.split()[0] for line in log.read_text().splitlines() if "/metrics" in line}


def test_every_gunicorn_worker_answers_the_same_figures(gunicorn, service, production):
    base, log = gunicorn
    now = timezone.now()
    JobRun.objects.create(
        job="rollouts.checks",
        started_at=now - timedelta(seconds=3),
        finished_at=now,
        outcome=RunOutcome.OK,
    )
    make_release(service=service, environment=production)
    first = scrape_at_once(base)
    assert all(answer == first[0] for answer in first), "workers disagree"
    planned = ("rolloutdesk_releases", (("status", "planned"),))
    assert first[0][planned] == 1

    # A change made outside the web processes shows in every worker's next answer. The rounds
    # go on until at least two workers have answered (the kernel spreads them; it rarely
    # takes more than one round), and every answer of every round must agree.
    Release.objects.update(status="aborted")
    then: list[dict[tuple, float]] = []
    for _ in range(ROUNDS):
        then += scrape_at_once(base)
        if len(answering_pids(log)) >= 2:
            break
    assert all(answer == then[0] for answer in then), "workers disagree"
    assert then[0][planned] == 0
    assert then[0][("rolloutdesk_releases", (("status", "aborted"),))] == 1

    pids = answering_pids(log)
    assert len(pids) >= 2, f"the scrapes were all answered by one worker: {pids}"
