"""The SQL provider on PostgreSQL: the runbooks' monitoring queries, read-only, with a timeout.

The "monitoring database" here is the test database itself, reached through its own connection
(as a real deployment reaches a replica): it holds an `agent_sessions` table like the runbooks'.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from apps.checks.choices import Level, MetricKind, SourceKind, Verdict
from apps.checks.models import CheckResult, MetricDefinition, MetricSource
from apps.core.actors import Actor
from apps.releases.choices import BlockerKind, EventVerb, ReleaseStatus
from apps.rollouts import gate, transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion, push
from tests.factories import PlanFactory, ServiceFactory, make_release

pytestmark = pytest.mark.django_db(transaction=True)

# Errors per minute of the release's sessions, as the runbooks' dashboards compute them.
ERROR_RATE_SQL = """
SELECT date_trunc('minute', started_at) AS at,
       avg(CASE WHEN failed THEN 1.0 ELSE 0.0 END) AS value,
       count(*) AS count
  FROM agent_sessions
 WHERE service = %(service)s AND version = %(version)s
   AND started_at >= %(start)s AND started_at < %(end)s
 GROUP BY 1
"""


def database_url() -> str:
    conf = connection.settings_dict
    auth = quote(conf["USER"] or "", safe="")
    if conf["PASSWORD"]:
        auth += ":" + quote(conf["PASSWORD"], safe="")
    return (
        f"postgres://{auth}@{conf['HOST'] or 'localhost'}:{conf['PORT'] or 5432}/"
        f"{quote(conf['NAME'], safe='')}"
    )


@pytest.fixture
def monitoring(postgres, settings):
    settings.CHECKS_SQL_DATABASES = {"monitoring": database_url()}
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE agent_sessions (id serial PRIMARY KEY, service text, version text,"
            " started_at timestamptz, failed boolean)"
        )
    yield "monitoring"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS agent_sessions")


@pytest.fixture
def release(production):
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    plan = PlanFactory(slug="sql", stages=[("canary", 5, timedelta(0), False)])
    made = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    transitions.start(made, actor=Actor.system("tests"))
    return made


def sessions(count: int, failed: int, *, version: str = "2.4.0", at=None) -> None:
    at = at or timezone.now() - timedelta(seconds=20)
    with connection.cursor() as cursor:
        for n in range(count):
            cursor.execute(
                "INSERT INTO agent_sessions (service, version, started_at, failed)"
                " VALUES (%s, %s, %s, %s)",
                ["ai-orchestra", version, at, n < failed],
            )


def sql_source(release, metric, query: str, timeout: float = 2.0) -> MetricSource:
    source = MetricSource(
        metric=metric,
        service=release.service,
        kind=SourceKind.SQL,
        database="monitoring",
        query=query,
        timeout_seconds=timeout,
    )
    source.full_clean()
    source.save()
    return source


def test_runbook_query_breach_rolls_back(monitoring, release, error_rate):
    sessions(40, failed=4)  # 10 %
    sessions(40, failed=40, version="2.3.0")  # another version: not this release
    criterion(release.plan, error_rate, on_critical="rollback", interval=timedelta(minutes=2))
    sql_source(release, error_rate, ERROR_RATE_SQL)

    run_checks()

    result = CheckResult.objects.get()
    assert (result.level, result.verdict) == (Level.CRITICAL, Verdict.FAIL)
    assert result.value == pytest.approx(0.10)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK
    assert "measured 10 %" in release.events.get(verb=EventVerb.ROLLED_BACK).reason


def test_a_query_past_the_statement_timeout_is_refused_and_recorded(
    monitoring, release, error_rate
):
    criterion(release.plan, error_rate, on_critical="rollback")
    sql_source(release, error_rate, "SELECT now() AS at, 0.5 AS value FROM pg_sleep(5)", 0.5)

    run_checks()

    result = CheckResult.objects.get()
    assert (result.level, result.verdict) == (Level.ERROR, Verdict.INCONCLUSIVE)
    assert result.detail == "Refused: the query ran past the statement timeout (0.5s)."
    release.refresh_from_db()
    assert release.status == ReleaseStatus.IN_PROGRESS


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO agent_sessions (service, version, started_at, failed)"
        " VALUES ('ai-orchestra', '2.4.0', now(), true) RETURNING started_at AS at, 1.0 AS value",
        "WITH gone AS (DELETE FROM agent_sessions RETURNING started_at)"
        " SELECT now() AS at, count(*)::float AS value FROM gone",
        "SELECT set_config('transaction_read_only', 'off', true), now() AS at, 1.0 AS value",
    ],
    ids=["insert", "delete-in-cte", "switch-off-read-only"],
)
def test_a_query_that_tries_to_write_is_refused_and_recorded(
    monitoring, release, error_rate, query
):
    sessions(3, failed=0)
    criterion(release.plan, error_rate)
    sql_source(release, error_rate, query)

    run_checks()

    result = CheckResult.objects.get()
    assert result.level == Level.ERROR
    assert result.detail.startswith("Refused: the source is read-only (")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM agent_sessions")
        assert cursor.fetchone()[0] == 3


def test_unknown_database_and_bad_columns(monitoring, release, error_rate):
    rule = criterion(release.plan, error_rate)
    source = sql_source(release, error_rate, "SELECT 1 AS one")

    run_checks()
    source.database = "nowhere"
    with pytest.raises(Exception, match="Unknown read-only database 'nowhere'"):
        source.full_clean()

    result = CheckResult.objects.get(criterion=rule)
    assert result.level == Level.ERROR
    assert result.detail == "The query must return columns `at` and `value`; it gave ['one']."


# Requests per minute of the release's sessions: the traffic metric read from the same database.
REQUESTS_SQL = """
SELECT date_trunc('minute', started_at) AS at, count(*) AS value
  FROM agent_sessions
 WHERE service = %(service)s AND version = %(version)s
   AND started_at >= %(start)s AND started_at < %(end)s
 GROUP BY 1
"""


def test_a_stages_traffic_is_counted_by_the_sql_source_not_pushed_samples(monitoring, production):
    requests = MetricDefinition.objects.create(
        key="requests", name="Requests", kind=MetricKind.COUNTER, counts_traffic=True
    )
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    plan = PlanFactory(slug="sql-traffic", stages=[("canary", 5, timedelta(0), False)])
    plan.stages.update(min_requests=50)
    start = timezone.now() - timedelta(minutes=30)

    def traffic_blockers() -> list[str]:
        release.refresh_from_db()
        return [b.detail for b in gate.evaluate(release).blockers if b.kind == BlockerKind.TRAFFIC]

    with time_machine.travel(start, tick=False) as clock:
        release = make_release(service=service, environment=production, plan=plan, version="2.4.0")
        transitions.start(release, actor=Actor.system("tests"))
        sql_source(release, requests, REQUESTS_SQL)
        # Pushed samples of the traffic metric would be enough: an SQL-sourced metric must not
        # fall back to them.
        push(release, requests, [1000], end=start + timedelta(minutes=5), count=None)
        sessions(30, failed=0, at=start + timedelta(minutes=5))
        sessions(30, failed=0, version="2.3.0", at=start + timedelta(minutes=5))
        sessions(30, failed=0, at=start - timedelta(minutes=5))  # before the stage began
        clock.move_to(start + timedelta(minutes=10))

        blockers = traffic_blockers()
        assert len(blockers) == 1
        assert blockers[0].startswith("Stage canary has served 30 of 50 requests;")

        sessions(20, failed=0, at=start + timedelta(minutes=9))
        assert traffic_blockers() == []
