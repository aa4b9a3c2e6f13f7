"""PostgreSQL restarts under a running app: requests fail cleanly (503, no traceback, nothing
about the database's internals), and the same gunicorn process serves again once it is back.

The machine's shared PostgreSQL is never touched: the test starts a private cluster with initdb and
pg_ctl on a free port under a temp dir (as the `postgres` user when run as root), copies the test
database into it with pg_dump, points gunicorn at it, then stops and starts that cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.rollouts import transitions
from tests.factories import ServiceFactory, make_release
from tests.faults.services import (
    FAST_SETTINGS,
    PostgresCluster,
    database_url,
    free_port,
    tail,
    temp_folder,
    terminate,
    wait_for,
)

pytestmark = [pytest.mark.services]

LEAKS = ("Traceback", "psycopg", "OperationalError", "connection refused", "SELECT", "5432")


@pytest.fixture
def cluster(postgres: None) -> Iterator[PostgresCluster]:
    folder = temp_folder("rd-fault-pg-")
    private = PostgresCluster(folder)
    private.init()
    private.start()
    try:
        yield private
    finally:
        if private.running():
            private.stop()
        shutil.rmtree(folder, ignore_errors=True)


def serve(database: str, folder: Path) -> tuple[subprocess.Popen, str, Path]:
    """gunicorn, one sync worker, production settings, on a free loopback port."""
    port = free_port()
    log = folder / "gunicorn.log"
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "DEBUG": "false",
        # The test process's key: the session it saved must be readable by the server.
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "ROLLOUTDESK_VAR_DIR": str(folder / "var"),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": FAST_SETTINGS,  # production settings, no static manifest
    }
    for name in ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER"):
        env.pop(name, None)  # the embedded file broker: this test is about the database
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "rolloutdesk.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--timeout", "30"],
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, f"http://127.0.0.1:{port}", log


def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()
    except OSError as exc:
        return 0, {}, str(exc)


def test_postgres_restarted_under_the_app_fails_cleanly_and_recovers_without_a_restart(
    transactional_db, cluster, victor
) -> None:
    release = make_release(service=ServiceFactory(slug="ai-orchestra"), version="2.4.0")
    transitions.start(release, actor=Actor.system("tests"))
    _, key = ApiToken.issue("ci", [release.service])
    browser = Client()
    browser.force_login(victor)  # the session row travels with the copied database
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    cluster.copy_database_from(database_url(), "rolloutdesk")

    folder = Path(cluster.folder)
    process, base, log = serve(cluster.url("rolloutdesk"), folder)
    calls = {
        "health": (f"{base}/api/v1/health/", {}),
        "api": (f"{base}/api/v1/releases/{release.pk}/traffic/", {"Authorization": f"Token {key}"}),
        "page": (f"{base}/releases/{release.pk}/", {"Cookie": f"sessionid={session}"}),
    }
    try:
        wait_for(lambda: get(*calls["health"])[0] == 200, timeout=30,
                 what="gunicorn to serve", log=tail(log))  # fmt: skip
        assert get(*calls["api"])[0] == 200
        status, _, body = get(*calls["page"])
        assert status == 200 and "2.4.0" in body

        cluster.stop()

        status, _, body = get(*calls["health"])
        assert status == 503 and '"database":"down"' in body.replace(" ", "")
        status, headers, body = get(*calls["api"])
        assert status == 503, body
        assert headers.get("Content-Type") == "application/json"
        assert headers.get("Retry-After") == "5"
        assert "database is unavailable" in body
        status, headers, body = get(*calls["page"])
        assert status == 503, body
        assert "temporarily unavailable" in body and headers.get("Retry-After") == "5"
        for answer in (get(*calls["api"])[2], body):
            leaked = [word for word in LEAKS if word.lower() in answer.lower()]
            assert not leaked, f"the error answer leaks {leaked}: {answer[:300]}"

        cluster.start()

        # The same process, its stale connections replaced on the next request.
        wait_for(lambda: get(*calls["api"])[0] == 200, timeout=15,
                 what="the API to answer again", log=tail(log))  # fmt: skip
        assert get(*calls["health"])[0] == 200
        status, _, body = get(*calls["page"])
        assert status == 200 and "2.4.0" in body
        assert process.poll() is None
        assert "Booting worker" in log.read_text() and log.read_text().count("Booting worker") == 1
    finally:
        terminate(process)
