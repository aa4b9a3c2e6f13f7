"""Benchmark: one weekly report (all services) over 1,000 releases and 1 million samples.

Not a test. Fills its own PostgreSQL database with bulk SQL and COPY: 1,000 releases across
eight services spread over the reported week and the week before (completed, rolled back,
aborted, in progress and paused; production and staging), each with its five stages, its events
(start, advances, completion or rollback, automatic pauses resumed, sign-off requests and
decisions, a few no-gos and overrides), sign-off rows and pending requests, a pre-deployment
checklist, metric check runs with four results each, an incident for one release in twelve, and
1,000,000 metric samples (COPY). Then it generates the weekly report for all services with the
product's own function (`apps.reports.services.obtain_report`: figures in SQL, both email parts,
two PNG charts, stored with its charts) and prints its wall time, time in SQL and query count.

Beside it, in the same run and the same database: the same report over a week ten weeks earlier
that holds 100 releases made the same way (the query count must not grow with releases), and
over an empty week (what a report costs with nothing in it). Each is also split into its figures
alone (`content.build`) and the unsaved draft (`services.generate`: figures, render, charts).

    .venv/bin/python bench/report.py                # rd_bench_report on 127.0.0.1:5432
    .venv/bin/python bench/report.py --releases 1000 --small 100 --samples 1000000 --repeat 5
    .venv/bin/python bench/report.py --reuse         # measure what the last run filled

It wipes and fills its own database: the database name must contain "bench".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from common import METRICS, copy_samples, machine_report, setup_django

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

    from apps.reports.schedule import Period

STAGES = [("5%", 5, 2, False), ("10%", 10, 2, True), ("25%", 25, 1, True),
          ("50%", 50, 1, False), ("100%", 100, 1, False)]  # fmt: skip
# Where a release stops: the last stage for completed ones, one of the first four otherwise.
REACHED = "(CASE WHEN r.status = 'completed' THEN 4 ELSE mod(r.id, 4) END)"
# When a release's stages end: its finish, or now for the running ones.
END = "COALESCE(r.finished_at, %(now)s)"
CHECK_RUNS_PER_RELEASE = 50


def periods(now: datetime) -> dict[str, Period]:
    """The reported week (the last whole one), a small week 10 weeks earlier, an empty one."""
    from apps.reports.schedule import last_complete_period, period_containing

    big = last_complete_period("weekly", now, "UTC")
    small = period_containing("weekly", big.first_day - timedelta(weeks=10), "UTC")
    empty = period_containing("weekly", big.first_day - timedelta(weeks=20), "UTC")
    return {"big": big, "small": small, "empty": empty}


def fill(*, releases: int, small: int, samples: int, services: int, now: datetime) -> dict:
    """Wipe the bench database and fill it: see the module docstring.

    Rows are written in bulk (INSERT ... SELECT over generate_series, and COPY for the samples)
    with the columns the product's own functions would set, not one by one through them, so
    that setup stays bounded; the report code is what is then measured.
    """
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from apps.checks.models import MetricCriterion, MetricDefinition
    from apps.releases.models import Environment, RolloutPlan, Service, StageTemplate

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    weeks = periods(now)
    with transaction.atomic():
        plan = RolloutPlan.objects.create(name="Bench progressive", slug="bench")
        for position, (name, pct, soak, auto) in enumerate(STAGES):
            StageTemplate.objects.create(
                plan=plan, position=position, name=name, traffic_percentage=pct,
                min_soak=timedelta(hours=soak), auto_advance=auto,
            )  # fmt: skip
        metrics = {
            key: MetricDefinition.objects.create(key=key, name=key, kind=kind, bad_direction=bad)
            for key, kind, bad, _ in METRICS
        }
        for key, _, bad, typical in METRICS:
            MetricCriterion.objects.create(
                plan=plan,
                metric=metrics[key],
                comparator="<" if bad == "lower" else ">",
                critical_threshold=typical * (0.5 if bad == "lower" else 3) or 1,
            )
        production = Environment.objects.create(
            name="Production", slug="production", is_production=True, order=1
        )
        staging = Environment.objects.create(name="Staging", slug="staging", order=0)
        made = [
            Service.objects.create(name=f"Service {n:02d}", slug=f"svc-{n:02d}", default_plan=plan)
            for n in range(services)
        ]
        users = {
            name: get_user_model().objects.create_user(name, f"{name}@example.com", is_staff=True)
            for name in ("rita", "alice", "bob")
        }
    common = {
        "first_service": made[0].pk, "services": services, "production": production.pk,
        "staging": staging.pk, "plan": plan.pk, "now": now,
    }  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        # The reported week and the one before it, then the small set ten weeks earlier
        # (finished by now: a release running for ten weeks would be in every report).
        _releases(cursor, common, releases, "1.", weeks["big"], running=True)
        _releases(cursor, common, small, "0.", weeks["small"], running=False)
        _stages(cursor, common)
        _events(cursor, common, users)
        _signoffs(cursor, common, users)
        _incidents(cursor, common)
        _checklists(cursor)
        _check_results(cursor, common)
    from apps.releases.models import Release

    big_ids = list(
        Release.objects.filter(version__startswith="1.").order_by("pk").values_list("pk", flat=True)
    )
    # The samples of the reported releases' last four hours of the week (the report reads check
    # results, not samples; they are there because a real database has them).
    stored = copy_samples(
        big_ids,
        metrics={key: m.pk for key, m in metrics.items()},
        samples=samples,
        now=weeks["big"].end - timedelta(hours=1),
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"seconds": time.perf_counter() - started, "samples": stored}


def _releases(
    cursor: CursorWrapper, common: dict, count: int, prefix: str, week: Period, *, running: bool
) -> None:
    """`count` releases started evenly over `week` and the week before it."""
    window_start = week.previous().start
    cursor.execute(
        """
        INSERT INTO releases_release (service_id, environment_id, version, plan_id, commit_sha,
            commit_time, changelog_url, author_name, status, stage_count, created_at, started_at,
            finished_at, updated_at)
        SELECT %(first_service)s + ((n / 20) %% %(services)s),
               CASE WHEN mod(n, 20) BETWEEN 7 AND 11 THEN %(staging)s ELSE %(production)s END,
               %(prefix)s || n, %(plan)s,
               -- one release in twenty redeploys the commit rolled back six before it
               md5(%(prefix)s || CASE WHEN mod(n, 20) = 6 THEN n - 6 ELSE n END),
               CASE WHEN mod(n, 10) <> 9 THEN s.started - (mod(n, 48) + 1) * interval '1 hour' END,
               '', 'carol', s.status, 5, s.started - interval '1 hour', s.started,
               CASE WHEN s.status IN ('completed', 'rolled_back', 'aborted')
                    THEN LEAST(s.started + (mod(n, 5) + 1) * interval '8 hours', %(now)s) END,
               %(now)s
        FROM generate_series(1, %(count)s) AS n
        CROSS JOIN LATERAL (
            SELECT %(window_start)s + (n - 1 + mod(n * 37, 100) / 100.0) * %(slot)s AS started,
                   CASE WHEN mod(n, 20) IN (0, 1) THEN 'rolled_back'
                        WHEN mod(n, 20) = 2 THEN 'aborted'
                        WHEN %(running)s AND mod(n, 20) IN (3, 4) THEN 'in_progress'
                        WHEN %(running)s AND mod(n, 20) = 5 THEN 'paused'
                        ELSE 'completed' END AS status
        ) AS s
        """,
        {**common, "prefix": prefix, "count": count, "running": running,
         "window_start": window_start, "slot": (week.end - window_start) / count},
    )  # fmt: skip


def _stages(cursor: CursorWrapper, common: dict) -> None:
    cursor.execute(
        f"""
        INSERT INTO releases_stage (release_id, position, name, traffic_percentage, min_soak,
            auto_advance, status, entered_at, exited_at, paused_for, min_requests, template_id,
            environment_id, commit_sha)
        SELECT r.id, t.position, t.name, t.traffic_percentage, t.min_soak, t.auto_advance,
               CASE WHEN t.position < {REACHED} THEN 'passed'
                    WHEN t.position = {REACHED} THEN
                        CASE r.status WHEN 'completed' THEN 'passed'
                                      WHEN 'rolled_back' THEN 'rolled_back'
                                      WHEN 'aborted' THEN 'skipped' ELSE 'active' END
                    WHEN r.status IN ('in_progress', 'paused') THEN 'pending'
                    ELSE 'skipped' END,
               CASE WHEN t.position <= {REACHED}
                    THEN r.started_at + t.position * ({END} - r.started_at) / ({REACHED} + 1) END,
               CASE WHEN t.position < {REACHED} OR (t.position = {REACHED} AND r.finished_at
                                                    IS NOT NULL)
                    THEN r.started_at + (t.position + 1) * ({END} - r.started_at)
                                        / ({REACHED} + 1) END,
               interval '0', 0, t.id, COALESCE(t.environment_id, r.environment_id),
               CASE WHEN t.position <= {REACHED} THEN r.commit_sha ELSE '' END
        FROM releases_release r CROSS JOIN releases_stagetemplate t
        WHERE t.plan_id = %(plan)s
        """,
        common,
    )
    cursor.execute(
        f"""
        UPDATE releases_release r SET current_stage_id = s.id
        FROM releases_stage s WHERE s.release_id = r.id AND s.position = {REACHED}
        """
    )
    # A paused release stopped half way through its current stage.
    cursor.execute(
        """
        UPDATE releases_release r SET paused_at = s.entered_at + (%(now)s - s.entered_at) / 2
        FROM releases_stage s WHERE s.id = r.current_stage_id AND r.status = 'paused'
        """,
        common,
    )


def _events(cursor: CursorWrapper, common: dict, users: dict) -> None:
    """The timeline the transitions would have written, plus automatic pauses resumed."""
    rita = users["rita"].pk
    cursor.execute(
        """
        INSERT INTO releases_event (release_id, stage_id, verb, actor_kind, actor_name,
            actor_user_id, reason, data, created_at)
        SELECT r.id, NULL::bigint, 'created', 'token', 'ci:bench', NULL::integer, '', '{}'::jsonb,
               r.created_at
        FROM releases_release r
        UNION ALL
        SELECT r.id, NULL, 'started', 'user', 'rita', %(rita)s, '', '{}'::jsonb, r.started_at
        FROM releases_release r
        UNION ALL
        SELECT s.release_id, s.id, 'advanced',
               CASE WHEN p.auto_advance THEN 'system' ELSE 'user' END,
               CASE WHEN p.auto_advance THEN 'system:auto-advance' ELSE 'rita' END,
               CASE WHEN p.auto_advance THEN NULL ELSE %(rita)s END, '', '{}'::jsonb, s.entered_at
        FROM releases_stage s JOIN releases_stage p
             ON p.release_id = s.release_id AND p.position = s.position - 1
        WHERE s.position > 0 AND s.entered_at IS NOT NULL
        UNION ALL
        -- the end of the finished ones; even rollbacks by the metric checks, odd ones by hand
        SELECT r.id, r.current_stage_id, r.status,
               CASE WHEN a.automatic THEN 'system' ELSE 'user' END,
               CASE WHEN a.automatic THEN 'system:metric-checks' ELSE 'rita' END,
               CASE WHEN a.automatic THEN NULL ELSE %(rita)s END,
               CASE WHEN r.status = 'rolled_back' THEN 'error_rate > 5 %%' ELSE '' END,
               '{}'::jsonb, r.finished_at
        FROM releases_release r
        CROSS JOIN LATERAL (SELECT r.status = 'rolled_back' AND mod(r.id, 2) = 0 AS automatic) a
        WHERE r.finished_at IS NOT NULL
        UNION ALL
        SELECT r.id, r.current_stage_id, 'paused', 'system', 'system:metric-checks', NULL,
               'p95_latency_seconds > 4.5', '{}'::jsonb, r.paused_at
        FROM releases_release r WHERE r.status = 'paused'
        UNION ALL
        -- one running release in three was paused by a check and resumed unchanged
        SELECT r.id, r.current_stage_id, v.verb, v.kind, v.name,
               CASE WHEN v.kind = 'user' THEN %(rita)s END, v.reason, '{}'::jsonb,
               s.entered_at + v.k * (%(now)s - s.entered_at) / 4
        FROM releases_release r JOIN releases_stage s ON s.id = r.current_stage_id
        CROSS JOIN (VALUES
            ('paused', 'system', 'system:metric-checks', 'error_rate > 2 %%', 1),
            ('resumed', 'user', 'rita', 'noise', 2)
        ) AS v(verb, kind, name, reason, k)
        WHERE r.status = 'in_progress' AND mod(r.id, 3) = 0
        """,
        {**common, "rita": rita},
    )


def _signoffs(cursor: CursorWrapper, common: dict, users: dict) -> None:
    """A go for leaving the first stage of every other release that left it (asked, signed,
    decided), a no-go now and then, an override, and requests still waiting on running ones."""
    params = {**common, "rita": users["rita"].pk, "alice": users["alice"].pk,
              "bob": users["bob"].pk}  # fmt: skip
    gates = """
        FROM releases_release r JOIN releases_stage s ON s.release_id = r.id AND s.position = 0
        WHERE s.exited_at IS NOT NULL AND s.exited_at < %(now)s AND mod(r.id, 2) = 0
    """
    asked = "s.exited_at - (mod(r.id, 11) + 1) * interval '15 minutes'"
    decided = "s.exited_at - interval '1 minute'"
    cursor.execute(
        f"""
        INSERT INTO releases_event (release_id, stage_id, verb, actor_kind, actor_name,
            actor_user_id, reason, data, created_at)
        SELECT r.id, s.id, 'signoffs_requested', 'user', 'rita', %(rita)s, '',
               '{{"gate": "leaving stage 5%%"}}'::jsonb, {asked} {gates}
        UNION ALL
        SELECT r.id, s.id, 'signed_off', 'user', 'alice', %(alice)s, 'looks clean',
               '{{"decision": "go", "gate": "leaving stage 5%%"}}'::jsonb, {decided} {gates}
        UNION ALL
        SELECT r.id, s.id, 'signoff_decided', 'user', 'alice', %(alice)s,
               'Go for leaving stage 5%%: 1 of Approvers.',
               jsonb_build_object('decision', 'go', 'gate', 'leaving stage 5%%',
                   'rule', '1 of Approvers', 'signers', jsonb_build_array(jsonb_build_object(
                       'signer', 'alice', 'decision', 'go', 'comment', 'looks clean',
                       'at', {decided}))),
               {decided} {gates}
        UNION ALL
        SELECT r.id, s.id, 'signed_off', 'user', 'bob', %(bob)s, 'error budget spent',
               '{{"decision": "no_go", "gate": "leaving stage 5%%"}}'::jsonb,
               s.entered_at + interval '10 minutes'
        FROM releases_release r JOIN releases_stage s ON s.release_id = r.id AND s.position = 0
        WHERE mod(r.id, 50) = 0
        UNION ALL
        SELECT r.id, s.id, 'gate_overridden', 'user', 'rita', %(rita)s, 'hotfix',
               '{{"step": "leaving stage 10%%", "blockers": []}}'::jsonb, s.exited_at
        FROM releases_release r JOIN releases_stage s ON s.release_id = r.id AND s.position = 1
        WHERE mod(r.id, 100) = 7 AND s.exited_at IS NOT NULL
        """,
        params,
    )
    cursor.execute(
        f"""
        INSERT INTO signoffs_signoffrequest (release_id, stage_id, gate_key, user_id,
            requested_at, requested_by, early, gate_blockers, sent_at, reminders_sent)
        SELECT r.id, s.id, 'stage:' || s.id || ':bench', u.id, {asked}, 'rita', false,
               '[]'::jsonb, {asked}, 0
        {gates.replace("WHERE", "CROSS JOIN (VALUES (%(alice)s), (%(bob)s)) AS u(id) WHERE")}
        UNION ALL
        -- every other running release waits at its current gate for alice and bob
        SELECT r.id, s.id, 'stage:' || s.id || ':bench', u.id, s.entered_at + interval '1 hour',
               'rita', false, '[]'::jsonb, s.entered_at + interval '1 hour', 0
        FROM releases_release r JOIN releases_stage s ON s.id = r.current_stage_id
        CROSS JOIN (VALUES (%(alice)s), (%(bob)s)) AS u(id)
        WHERE r.status IN ('in_progress', 'paused') AND mod(r.id, 2) = 1
        """,
        params,
    )
    cursor.execute(
        f"""
        INSERT INTO signoffs_signoff (release_id, stage_id, stage_entered_at, gate_key,
            commit_sha, signer_id, decision, comment, created_at, lapse_reason)
        SELECT r.id, s.id, s.entered_at, 'stage:' || s.id || ':bench', r.commit_sha, %(alice)s,
               'go', 'looks clean', {decided}, '' {gates}
        """,
        params,
    )


def _incidents(cursor: CursorWrapper, common: dict) -> None:
    """One release in twelve has an incident, opened half way through it; most are resolved."""
    cursor.execute(
        """
        INSERT INTO incidents_incident (service_id, release_id, title, description, severity,
            status, source, fingerprint, labels, link, opened_at, acknowledged_at, resolved_at,
            trigger_count, last_triggered_at, last_trigger_key, escalation_started_at,
            escalation_step, reopen_count, updated_at, routed_by, routing_note)
        SELECT i.service_id, i.id, 'Errors up on ' || i.version, '', 'sev' || (mod(i.id, 4) + 1),
               CASE WHEN i.resolved_at IS NOT NULL THEN 'resolved'
                    WHEN i.acknowledged_at IS NOT NULL THEN 'acknowledged' ELSE 'open' END,
               (ARRAY['manual', 'alertmanager', 'breach'])[mod(i.id, 3) + 1], '', '{}'::jsonb, '',
               i.opened_at, i.acknowledged_at, i.resolved_at, 1, i.opened_at, '', i.opened_at,
               0, 0, %(now)s, 'service', ''
        FROM (
            SELECT r.id, r.service_id, r.version, o.opened_at,
                   CASE WHEN mod(r.id, 7) <> 0
                        THEN o.opened_at + (mod(r.id, 30) + 2) * interval '1 minute' END
                        AS acknowledged_at,
                   CASE WHEN mod(r.id, 5) <> 0 AND o.resolving < %(now)s
                        THEN o.resolving END AS resolved_at
            FROM releases_release r
            CROSS JOIN LATERAL (
                SELECT r.started_at + (COALESCE(r.finished_at, %(now)s) - r.started_at) / 2
                       AS opened_at) AS h
            CROSS JOIN LATERAL (
                SELECT h.opened_at, h.opened_at + (mod(r.id, 12) + 1) * interval '1 hour'
                       AS resolving) AS o
            WHERE mod(r.id, 12) = 0
        ) AS i
        """,
        common,
    )


def _checklists(cursor: CursorWrapper) -> None:
    """A pre-deployment checklist of six items per release, some of them done."""
    cursor.execute(
        """
        INSERT INTO checklists_checklist (release_id, template_id, name, template_version, kind,
            stage_id, position, created_at, opened_at)
        SELECT r.id, NULL, 'Pre-deployment', 1, 'pre_deployment', NULL, 0, r.created_at,
               r.created_at
        FROM releases_release r
        """
    )
    cursor.execute(
        """
        INSERT INTO checklists_checklistitem (checklist_id, actor_kind, actor_name, position,
            section, text, required, key, state, changed_at, comment, evidence_url)
        SELECT c.id, CASE WHEN k < mod(c.release_id, 7) THEN 'user' ELSE '' END,
               CASE WHEN k < mod(c.release_id, 7) THEN 'rita' ELSE '' END, k, 'Before',
               'Item ' || k, k < 4, '',
               CASE WHEN k < mod(c.release_id, 7) THEN 'done' ELSE 'open' END,
               CASE WHEN k < mod(c.release_id, 7) THEN c.created_at END, '', ''
        FROM checklists_checklist c CROSS JOIN generate_series(0, 5) AS k
        """
    )


def _check_results(cursor: CursorWrapper, common: dict) -> None:
    """CHECK_RUNS_PER_RELEASE runs over each release's life, one result per criterion each;
    a rolled-back release fails its last tenth, one result in 37 warns."""
    cursor.execute(
        f"""
        INSERT INTO checks_checkrun (release_id, stage_id, trigger, started_at, finished_at,
            verdict, action)
        SELECT r.id, NULL, 'tick',
               r.started_at + k * ({END} - r.started_at) / ({CHECK_RUNS_PER_RELEASE} + 1),
               r.started_at + k * ({END} - r.started_at) / ({CHECK_RUNS_PER_RELEASE} + 1)
                   + interval '2 seconds', '', ''
        FROM releases_release r CROSS JOIN generate_series(1, {CHECK_RUNS_PER_RELEASE}) AS k
        """,
        common,
    )
    typical = ", ".join(f"('{key}', {value})" for key, _, _, value in METRICS)
    cursor.execute(
        f"""
        INSERT INTO checks_checkresult (run_id, release_id, criterion_id, label, at, level,
            verdict, value, samples, detail, dry_run, critical_streak, breach_streak,
            nodata_streak, episode)
        SELECT x.run_id, x.release_id, x.criterion_id, x.label, x.at,
               CASE x.verdict WHEN 'pass' THEN 'ok' WHEN 'warn' THEN 'warning'
                              ELSE 'critical' END,
               x.verdict, x.value, 1000, '', false, 0, 0, 0, 0
        FROM (
            SELECT cr.id AS run_id, r.id AS release_id, c.id AS criterion_id,
                   m.key || ' ' || c.comparator || ' ' || c.critical_threshold AS label,
                   cr.started_at AS at,
                   CASE WHEN r.status = 'rolled_back'
                             AND cr.started_at >= r.finished_at
                                 - (r.finished_at - r.started_at) / 10 THEN 'fail'
                        WHEN mod(cr.id + c.id, 37) = 0 THEN 'warn' ELSE 'pass' END AS verdict,
                   t.value * (1 + (mod(cr.id * 7 + c.id * 13, 11) - 5) / 100.0) AS value
            FROM checks_checkrun cr JOIN releases_release r ON r.id = cr.release_id
            JOIN checks_metriccriterion c ON c.plan_id = r.plan_id
            JOIN checks_metricdefinition m ON m.id = c.metric_id
            JOIN (VALUES {typical}) AS t(key, value) ON t.key = m.key
        ) AS x
        """
    )


# --- measuring ------------------------------------------------------------------------------


def measure(work: Callable[[], Any], *, repeat: int, before: Callable[[], Any]) -> dict:
    """Run `work` `repeat` times (after `before`, untimed); times and the last run's queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, sql = [], []
    for _ in range(repeat):
        before()
        connection.queries_log.clear()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            result = work()
            times.append(time.perf_counter() - started)
        sql.append(sum(float(q["time"]) for q in queries.captured_queries))
    return {
        "queries": len(queries),
        "median": statistics.median(times),
        "worst": max(times),
        "sql": statistics.median(sql),
        "result": result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=1_000)
    parser.add_argument("--small", type=int, default=100, help="Releases in the baseline week.")
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--services", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="Measure the data already there.")
    args = parser.parse_args()
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "k" * 50)
    setup_django("rd_bench_report")
    machine_report()

    from django.db import connection
    from django.utils import timezone

    from apps.checks.models import CheckResult
    from apps.releases.models import Event, Release
    from apps.reports import content, services
    from apps.reports.models import Report

    if args.reuse:
        newest = Release.objects.order_by("-updated_at").values_list("updated_at", flat=True)
        now = newest.first() or timezone.now()
    else:
        now = timezone.now().replace(microsecond=0)
        data = fill(
            releases=args.releases, small=args.small, samples=args.samples,
            services=args.services, now=now,
        )  # fmt: skip
        print(f"Filled in {data['seconds']:.0f}s")
    weeks = periods(now)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'checks_sample'")
        samples = cursor.fetchone()[0]
    print(
        f"Data: {Release.objects.count():,} releases, {Event.objects.count():,} events, "
        f"{CheckResult.objects.count():,} check results, about {samples:,} samples\n"
    )

    def release_count(period: Period) -> int:
        previous = period.previous()
        return Release.objects.filter(
            started_at__gte=previous.start, started_at__lt=period.end
        ).count()

    def forget(period: Period) -> Callable[[], None]:
        # Each run generates and stores the report anew, as the first subscriber's run does.
        return lambda: Report.objects.filter(service=None, period_start=period.start).delete()

    # Warm up imports and caches (matplotlib, templates, content types): not measured.
    services.generate(None, weeks["empty"], now=now)

    rows = []
    for key in ("empty", "small", "big"):
        period = weeks[key]
        label = f"{period.label}, {release_count(period):,} releases in it and the week before"
        for name, work in (
            ("figures (content.build)", lambda p=period: content.build(None, p, now=now)),
            ("draft (services.generate)", lambda p=period: services.generate(None, p, now=now)),
            ("stored (services.obtain_report)",
             lambda p=period: services.obtain_report(None, p, now=now)[0]),
        ):  # fmt: skip
            rows.append(
                (key, label, name, measure(work, repeat=args.repeat, before=forget(period)))
            )

    print(f"One weekly report, all services, {args.repeat} runs each (DEBUG off); seconds\n")
    print(f"{'':34} {'queries':>8} {'median':>8} {'worst':>8} {'in SQL':>8}")
    shown = None
    for _, label, name, row in rows:
        if label != shown:
            print(label)
            shown = label
        print(
            f"  {name:32} {row['queries']:8d} {row['median']:8.2f} {row['worst']:8.2f} "
            f"{row['sql']:8.2f}"
        )

    report = rows[-1][3]["result"]
    data = report.content
    overview = {item["key"]: item for item in data["overview"]}
    print(f"\nThe {data['period']['label']} report (id {report.pk}):")
    shown_figures = "started completed rolled_back deployments change_failure_rate check_pass_rate"
    shown_figures += " incidents_opened automatic_actions signoff_wait"
    for key in shown_figures.split():
        item = overview[key]
        print(
            f"  {item['label']:32} {item['current_display']:>10}   previous "
            f"{item['previous_display']:>10}   {item['change_display']}"
        )
    print(
        f"  rows: {len(data['releases']['rows'])} releases, {len(data['checks']['rows'])} "
        f"release × criterion, {len(data['gates']['decisions'])} gate decisions, "
        f"{len(data['next_steps']['pending_signoffs'])} pending sign-offs"
    )
    print(
        f"  sizes: HTML email {len(report.html.encode()) / 1024:,.0f} KiB, text "
        f"{len(report.text.encode()) / 1024:,.0f} KiB, content JSON "
        f"{len(json.dumps(data).encode()) / 1024:,.0f} KiB, charts "
        f"{sum(len(c.png) for c in report.charts.all()) / 1024:,.0f} KiB"
    )
    stored = {key: row["queries"] for key, _, name, row in rows if name.startswith("stored")}
    verdict = (
        "does not grow"
        if stored["small"] == stored["big"]
        else f"GREW from {stored['small']} to {stored['big']}"
    )
    print(f"\nQueries with {args.releases:,} releases instead of {args.small:,}: {verdict}.")


if __name__ == "__main__":
    main()
