"""Django's PostgreSQL backend, with a health check that costs no round trip while it can.

With persistent connections (CONN_MAX_AGE) and CONN_HEALTH_CHECKS, Django checks a reused
connection at the start of every request with `SELECT 1`: a round trip to the server before the
request's own first query. On the API's lean read (one query per answer) that was half the
database round trips and a fifth of its time in process (docs/performance.md).

A server that ends a connection — restarted, `pg_terminate_backend`, an idle timeout — sends
its termination message and closes the socket, which then reads as ready. An idle connection
the server still holds has nothing to read. So the check looks at the socket first, without
waiting: nothing to read is as usable as `SELECT 1` would find it; anything to read (the
termination, or a notice) gets Django's own `SELECT 1`, which reads it and decides. A link cut
without a word from the server (no FIN, no RST) is not seen this way, as `SELECT 1` would not
see it either before the TCP timeout; the request's query then fails, and Django closes the
connection at the request's end (errors_occurred), as it does today.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper


class DatabaseWrapper(PostgresDatabaseWrapper):
    def is_usable(self) -> bool:
        raw = self.connection
        if raw is None or raw.closed or raw.broken:
            return False
        try:
            readable, _, _ = select.select([raw.fileno()], [], [], 0)
        except (OSError, ValueError):  # the socket is gone already
            return False
        if not readable:
            return True
        return super().is_usable()
