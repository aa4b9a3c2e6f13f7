"""The PostgreSQL backend's health check (apps/core/postgresql/base.py): a reused connection that
the server still holds costs no round trip at the start of a request; one the server ended is
found, closed and replaced before the request's first query."""

from __future__ import annotations

import io
import select
import time
from unittest import mock

import psycopg
import pytest
from django.core.wsgi import get_wsgi_application
from django.db import connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper

pytestmark = [pytest.mark.django_db(transaction=True)]


def terminate_from_elsewhere() -> None:
    """End this test's database connection from another one, as a server restart would."""
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The server's termination message reaches our socket a moment later.
    deadline = time.monotonic() + 5
    while not select.select([connection.connection.fileno()], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the terminated connection's socket never woke"


def test_it_is_the_backend_in_use(postgres) -> None:
    assert type(connections["default"]).__module__ == "apps.core.postgresql.base"
    assert connection.vendor == "postgresql"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]


def test_a_connection_the_server_holds_is_usable_without_a_query(postgres) -> None:
    connection.ensure_connection()
    raw = connection.connection
    with mock.patch.object(type(raw), "cursor", autospec=True) as cursor:
        assert connection.is_usable()
    cursor.assert_not_called()  # Django's own check runs SELECT 1 here


def test_a_connection_the_server_ended_is_found_unusable(postgres) -> None:
    connection.ensure_connection()
    terminate_from_elsewhere()
    assert not connection.is_usable()
    connection.close()  # as Django does with an unusable one


def wsgi_get(path: str) -> str:
    """A request through Django's WSGI handler in this thread, as a worker serves it (Django's
    test client and live server skip the request_started health check or close every
    connection after each request)."""
    statuses = []
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "HTTP_HOST": "testserver", "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }  # fmt: skip
    b"".join(get_wsgi_application()(environ, lambda status, headers: statuses.append(status)))
    return statuses[0]


def test_a_request_after_the_server_ended_the_connection_gets_a_new_one(postgres) -> None:
    assert wsgi_get("/api/v1/health/") == "200 OK"
    before = connection.connection.info.backend_pid
    terminate_from_elsewhere()
    # request_started: the health check closes the dead connection; the view opens a new one.
    assert wsgi_get("/api/v1/health/") == "200 OK"  # not 503
    assert connection.connection.info.backend_pid != before


def test_a_request_on_a_held_connection_sends_no_health_query(postgres) -> None:
    assert wsgi_get("/api/v1/health/") == "200 OK"
    raw = connection.connection
    ours = type(connections["default"])
    with (
        mock.patch.object(ours, "is_usable", autospec=True, side_effect=ours.is_usable) as check,
        mock.patch.object(PostgresDatabaseWrapper, "is_usable", autospec=True) as select_1,
    ):
        assert wsgi_get("/api/v1/health/") == "200 OK"
    check.assert_called_once()  # the request's health check ran
    select_1.assert_not_called()  # without Django's SELECT 1
    assert connection.connection is raw  # on the same connection
