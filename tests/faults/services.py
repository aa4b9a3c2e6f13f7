"""Real servers the fault and scale-out tests start, stop and restart: their own Redis, their own
PostgreSQL cluster, Celery workers and beat, gunicorn. Never the machine's shared ones.

Every wait is bounded; every process is stopped by the fixture that started it.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import need_service

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
# The fault tests' worker and beat run with ticks of a few seconds (tests/faults/fast_settings.py).
FAST_SETTINGS = "tests.faults.fast_settings"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], object], *, timeout: float, what: str, log: str = ""
) -> object:
    """Poll until predicate() is truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:.0f}s waiting for {what}.\n{log}")
        time.sleep(0.2)


def terminate(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM (a worker's warm shutdown), then SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def tail(path: Path, lines: int = 60) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return f"--- {path.name} (tail) ---\n" + "\n".join(text.splitlines()[-lines:])


# --- Redis ---------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own on a free port, stopped and restarted on that same port."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            need_service("redis-server is not installed")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: port_open(self.port), timeout=10, what=f"redis-server on {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, timeout=10)
            self.process = None
        wait_for(lambda: not port_open(self.port), timeout=10, what="redis-server to stop")


# --- PostgreSQL ----------------------------------------------------------------------------------


class PostgresCluster:
    """A private PostgreSQL cluster (initdb + pg_ctl) under a temp dir, on a free port.

    initdb refuses to run as root, so as root it runs as the `postgres` system user.
    """

    def __init__(self, folder: Path) -> None:
        if not (PG_BIN / "initdb").exists():
            need_service(f"PostgreSQL server binaries are not in {PG_BIN}")
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                need_service("initdb cannot run as root and runuser is missing")
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, user="postgres")

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, timeout=60, cwd=self.folder
        )
        if result.returncode:
            pytest.fail(f"{args[0]} failed: {result.stdout}\n{result.stderr}")

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.folder / "postgres.log"), "-w", "-t", "30", "start")  # fmt: skip

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30",
                  "stop")  # fmt: skip

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def copy_database_from(self, source_url: str, name: str) -> None:
        """CREATE DATABASE name here, with the schema and rows of the database at source_url."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        dump = subprocess.run(
            [str(PG_BIN / "pg_dump"), "--no-owner", "--no-privileges", "-d", source_url],
            capture_output=True,
            timeout=120,
        )
        if dump.returncode:
            pytest.fail(f"pg_dump failed: {dump.stderr.decode()}")
        load = subprocess.run(
            [str(PG_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url(name)],
            input=dump.stdout,
            capture_output=True,
            timeout=120,
        )
        if load.returncode:
            pytest.fail(f"psql failed to load the dump: {load.stderr.decode()}")


# --- the test database, seen from other processes -------------------------------------------------


def database_url() -> str:
    """The URL of the database this test process uses right now (the test database)."""
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(str(conf['NAME'])).resolve()}"
    auth = quote(conf["USER"] or "", safe="")
    if conf["PASSWORD"]:
        auth += ":" + quote(conf["PASSWORD"], safe="")
    host, port = conf["HOST"] or "localhost", conf["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{quote(conf['NAME'], safe='')}"


# --- Celery processes ----------------------------------------------------------------------------


@dataclass
class CeleryProcess:
    """A running `celery worker` or `celery beat`, its log and (for a worker) its outbox."""

    process: subprocess.Popen
    log: Path
    outbox: Path

    def emails(self) -> list[EmailMessage]:
        """Every email this worker sent (Django's file backend: one file per connection)."""
        found = []
        for path in sorted(self.outbox.glob("*.log")):
            for chunk in path.read_text().split("-" * 79):
                if chunk.strip():
                    found.append(
                        email.message_from_string(chunk.lstrip("\n"), policy=email.policy.default)
                    )
        return found

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no chance to acknowledge or restore anything."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        terminate(self.process)


@dataclass
class Celery:
    """Starts workers and beat on one broker and one database; stops them all at the end."""

    broker_url: str
    database_url: str
    folder: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    started: list[CeleryProcess] = field(default_factory=list)

    def _env(self, outbox: Path) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.broker_url,
            "EMAIL_URL": f"filemail:///{outbox}",
            "DJANGO_SETTINGS_MODULE": FAST_SETTINGS,
            "DEBUG": "true",  # no SECRET_KEY needed outside pytest
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        for name in ("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_WRITE_URL",
                     "CELERY_BROKER_READ_URL"):  # fmt: skip
            env.pop(name, None)
        return env

    def _start(self, kind: str, args: list[str], ready: bytes) -> CeleryProcess:
        name = f"{kind}-{len(self.started) + 1}"
        outbox = self.folder / f"{name}-outbox"
        outbox.mkdir(parents=True, exist_ok=True)
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "rolloutdesk", kind, *args],
                cwd=settings.BASE_DIR,
                env=self._env(outbox),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started = CeleryProcess(process=process, log=log, outbox=outbox)
        self.started.append(started)
        wait_for(
            lambda: process.poll() is not None or ready in log.read_bytes(),
            timeout=40,
            what=f"celery {kind} to be ready",
            log=tail(log),
        )
        if process.poll() is not None:
            pytest.fail(f"celery {kind} exited with {process.returncode}.\n{tail(log)}")
        return started

    def worker(self, *, concurrency: int = 1) -> CeleryProcess:
        pool = ["--pool=solo"] if concurrency == 1 else ["--pool=prefork", f"-c{concurrency}"]
        return self._start(
            "worker",
            [*pool, "--loglevel=INFO", "--without-mingle", "--without-gossip",
             "--without-heartbeat", f"--hostname=fault-{uuid.uuid4().hex[:8]}@%h"],
            b" ready.",
        )  # fmt: skip

    def beat(self) -> CeleryProcess:
        return self._start(
            "beat",
            ["--loglevel=DEBUG", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
             "--pidfile=", f"--schedule={self.folder / 'beat-schedule'}"],
            b"beat: Starting",
        )  # fmt: skip

    def emails(self) -> list[EmailMessage]:
        return [message for process in self.started for message in process.emails()]

    def logs(self) -> str:
        return "\n".join(tail(process.log, 40) for process in self.started)

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


def temp_folder(prefix: str) -> Path:
    """A folder outside pytest's tmp_path: a private PostgreSQL needs short socket paths."""
    return Path(tempfile.mkdtemp(prefix=prefix))
