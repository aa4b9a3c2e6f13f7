"""rolloutdesk's own metrics, read from the database when Prometheus scrapes.

Why from the database and not counters kept in the processes (PROMETHEUS_MULTIPROC_DIR): what
is counted happens in Celery workers (the tick, the sends), possibly on other machines, while
/metrics is answered by whichever gunicorn worker takes the request. A multiprocess directory
is shared only by the processes of one host, must be wiped when they restart, and would still
miss the workers. The rows are the truth every process shares, so any worker of any host
answers the same scrape with the same figures, and a restart loses nothing. Every figure is
therefore a gauge of the current state (or of the last `METRICS_WINDOW_SECONDS`); rates are
PromQL's job (`deriv`, `delta`). The queries are a fixed number per scrape, whatever the
number of rows (tests/exporter/test_metrics.py counts them), plus the sign-off gates of the
active releases that have requests out.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from apps.checks.choices import Level, SourceKind, Verdict
from apps.checks.models import CheckResult
from apps.checks.selection import source_for, sources_by_key
from apps.incidents.choices import IncidentStatus, Severity
from apps.incidents.models import Incident
from apps.jobs.heartbeat import expected_jobs, stale_jobs
from apps.jobs.models import JobRun
from apps.outbox.choices import DeliveryStatus
from apps.outbox.engine import BOXES
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.models import Release
from apps.reports.models import ReportDelivery
from apps.rollouts.models import GateState
from apps.signoffs.asking import pending_for
from apps.signoffs.models import SignOffRequest

PREFIX = "rolloutdesk_"
# Outgoing rows worth counting: sent and skipped ones only grow and say nothing about trouble.
UNSENT = [DeliveryStatus.PENDING, DeliveryStatus.FAILED]


def window() -> timedelta:
    """How far back the windowed figures (check evaluations) look."""
    return timedelta(seconds=settings.METRICS_WINDOW_SECONDS)


def releases(now: datetime) -> Iterator[Metric]:
    counts = dict(Release.objects.order_by().values_list("status").annotate(n=Count("id")))
    family = GaugeMetricFamily(PREFIX + "releases", "Releases by status.", labels=["status"])
    for status in ReleaseStatus.values:
        family.add_metric([status], counts.get(status, 0))
    yield family
    # The gate of each active release as its kept verdict (apps/rollouts/verdicts.py) last
    # answered it: read, never recomputed here (the tick recomputes those due), so a scrape
    # costs the same with ten or ten thousand releases running. No kept verdict yet: "unknown".
    rows = (
        Release.objects.active()
        .order_by()
        .values_list("kept_verdict__state", "kept_verdict__top_kind")
        .annotate(n=Count("id"))
    )
    states: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    for state, kind, n in rows:
        states[state or "unknown"] += n
        if kind:
            held[kind] += n
    gates = GaugeMetricFamily(
        PREFIX + "release_gates",
        "Active (in progress or paused) releases by the state of their gate: green (open), "
        "amber (only waiting for time, a tick or a signature), red (held), unknown (not kept "
        "yet).",
        labels=["state"],
    )
    for state in [*GateState.values, "unknown"]:
        gates.add_metric([state], states.get(state, 0))
    yield gates
    kinds = GaugeMetricFamily(
        PREFIX + "release_gates_held_by",
        "Active releases whose gate is not open, by the kind of their most important blocker.",
        labels=["kind"],
    )
    for kind in BlockerKind.values:
        kinds.add_metric([kind], held.get(kind, 0))
    yield kinds


def jobs(now: datetime) -> Iterator[Metric]:
    """The periodic jobs' last runs (the tick is rollouts.checks and rollouts.auto_advance)."""
    runs = {run.job: run for run in JobRun.objects.all()}
    intervals = {name: every for name, _, every in expected_jobs()}
    stale = {job.job for job in stale_jobs(now)}
    duration = GaugeMetricFamily(
        PREFIX + "job_duration_seconds", "How long the job's last run took.", labels=["task"]
    )
    finished = GaugeMetricFamily(
        PREFIX + "job_last_run_timestamp_seconds",
        "When the job's last run finished (Unix time).",
        labels=["task"],
    )
    lag = GaugeMetricFamily(
        PREFIX + "job_lag_seconds",
        "Seconds since the job's last run finished (its lag behind the schedule).",
        labels=["task"],
    )
    failed = GaugeMetricFamily(
        PREFIX + "job_items_failed",
        "Items that failed in the job's last run.",
        labels=["task"],
    )
    interval = GaugeMetricFamily(
        PREFIX + "job_interval_seconds",
        "How often the beat schedule runs the job.",
        labels=["task"],
    )
    stale_family = GaugeMetricFamily(
        PREFIX + "job_stale",
        "1 when the heartbeat finds the job stopped: not run for two intervals, never run, or "
        "its last run crashed (as /api/v1/health/ reports).",
        labels=["task"],
    )
    for name in sorted(set(runs) | set(intervals)):
        run = runs.get(name)
        if run is not None:
            duration.add_metric([name], (run.finished_at - run.started_at).total_seconds())
            finished.add_metric([name], run.finished_at.timestamp())
            lag.add_metric([name], max(0.0, (now - run.finished_at).total_seconds()))
            failed.add_metric([name], run.items_failed)
        if name in intervals:
            interval.add_metric([name], intervals[name].total_seconds())
            stale_family.add_metric([name], 1 if name in stale else 0)
    yield from (duration, finished, lag, failed, interval, stale_family)


def check_evaluations(now: datetime) -> Iterator[Metric]:
    """Criterion evaluations of the window by provider (where the metric was read) and verdict.

    The provider is the source the evaluation read, chosen as the checks choose it
    (apps.checks.selection.source_for: the service's own source, else the shared one, else the
    pushed samples); grouped in SQL first, so the rows read are the groups, not the results.
    """
    groups = list(
        CheckResult.objects.filter(at__gte=now - window())
        .order_by()
        .values_list("release__service_id", "criterion__metric_id", "verdict", "level")
        .annotate(n=Count("id"))
    )
    sources = sources_by_key(
        {service for service, *_ in groups}, {metric for _, metric, *_ in groups if metric}
    )
    evaluations: dict[tuple[str, str], int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    for service_id, metric_id, verdict, level, n in groups:
        source = source_for(sources, service_id, metric_id) if metric_id else None
        provider = source.kind if source is not None else SourceKind.PUSH
        evaluations[(provider, verdict)] += n
        if level == Level.ERROR:
            errors[provider] += n
    seconds = int(window().total_seconds())
    family = GaugeMetricFamily(
        PREFIX + "check_evaluations",
        f"Metric criterion evaluations in the last {seconds} s, by provider and verdict.",
        labels=["provider", "verdict"],
    )
    failures = GaugeMetricFamily(
        PREFIX + "check_source_failures",
        f"Evaluations in the last {seconds} s whose source failed (query error, timeout), "
        "by provider.",
        labels=["provider"],
    )
    for provider in SourceKind.values:
        for verdict in Verdict.values:
            family.add_metric([provider, verdict], evaluations.get((provider, verdict), 0))
        failures.add_metric([provider], errors.get(provider, 0))
    window_family = GaugeMetricFamily(
        PREFIX + "check_window_seconds", "The window the check figures cover."
    )
    window_family.add_metric([], seconds)
    yield from (family, failures, window_family)


def _channel_of(model: type) -> Callable[[dict], str]:
    names = {field.name for field in model._meta.get_fields()}
    if "channel" in names:
        return lambda row: row["channel"]
    return lambda row: "email"  # the outbox tables without a channel column send emails


def deliveries(now: datetime) -> Iterator[Metric]:
    """Unsent rows of every registered outbox table (apps.outbox.engine.BOXES) by channel."""
    count = GaugeMetricFamily(
        PREFIX + "deliveries",
        "Outgoing messages not sent yet (pending) or failed, by outbox table and channel.",
        labels=["table", "channel", "status"],
    )
    oldest = GaugeMetricFamily(
        PREFIX + "deliveries_oldest_unsent_seconds",
        "Age of the oldest pending or failed message, by outbox table and channel.",
        labels=["table", "channel"],
    )
    for label in sorted(BOXES):
        model = BOXES[label].model
        channel_of = _channel_of(model)
        fields = ["status", *(["channel"] if "channel" in _field_names(model) else [])]
        totals: dict[tuple[str, str], int] = defaultdict(int)
        first: dict[str, datetime] = {}
        rows = (
            model.objects.filter(status__in=UNSENT)
            .order_by()
            .values(*fields)
            .annotate(n=Count("pk"), since=Min("created_at"))
        )
        for row in rows:
            channel = channel_of(row)
            totals[(channel, row["status"])] += row["n"]
            if channel not in first or row["since"] < first[channel]:
                first[channel] = row["since"]
        channels = {channel for channel, _ in totals} or {"email"}
        for channel in sorted(channels):
            for status in UNSENT:
                count.add_metric([label, channel, status], totals.get((channel, status), 0))
            since = first.get(channel)
            oldest.add_metric([label, channel], (now - since).total_seconds() if since else 0)
    yield from (count, oldest)


def _field_names(model: type) -> set[str]:
    return {field.name for field in model._meta.get_fields()}


def incidents(now: datetime) -> Iterator[Metric]:
    rows = (
        Incident.objects.unresolved()
        .order_by()
        .values_list("severity", "status")
        .annotate(n=Count("id"))
    )
    counts = {(severity, status): n for severity, status, n in rows}
    family = GaugeMetricFamily(
        PREFIX + "incidents_open",
        "Unresolved incidents by severity and status (open, acknowledged, mitigated).",
        labels=["severity", "status"],
    )
    for severity in Severity.values:
        for status in IncidentStatus.unresolved():
            family.add_metric([severity, status], counts.get((severity, status), 0))
    yield family


def signoffs(now: datetime) -> Iterator[Metric]:
    """People asked to sign a gate that still waits for them (apps.signoffs.asking.pending_for)."""
    requests = list(
        SignOffRequest.objects.filter(release__status__in=ReleaseStatus.active())
        .select_related("release")
        .order_by("release_id", "id")
    )
    waiting = pending_for(requests, now)
    count = GaugeMetricFamily(
        PREFIX + "signoffs_waiting",
        "Sign-off requests whose gate is still current, short of its quorum and unsigned by the "
        "person asked.",
    )
    count.add_metric([], len(waiting))
    oldest = GaugeMetricFamily(
        PREFIX + "signoffs_oldest_waiting_seconds",
        "Age of the oldest waiting sign-off request (0: none waits).",
    )
    first = min((request.requested_at for request in waiting), default=None)
    oldest.add_metric([], (now - first).total_seconds() if first else 0)
    yield from (count, oldest)


def reports(now: datetime) -> Iterator[Metric]:
    counts = dict(ReportDelivery.objects.order_by().values_list("status").annotate(n=Count("id")))
    family = GaugeMetricFamily(
        PREFIX + "report_deliveries",
        "Report emails by status (sent ones are every report send so far).",
        labels=["status"],
    )
    for status in DeliveryStatus.values:
        family.add_metric([status], counts.get(status, 0))
    last = ReportDelivery.objects.filter(sent_at__isnull=False).order_by("-sent_at").first()
    sent = GaugeMetricFamily(
        PREFIX + "report_last_sent_timestamp_seconds",
        "When a report email was last sent (Unix time; absent before the first).",
    )
    if last is not None:
        sent.add_metric([], last.sent_at.timestamp())
    yield from (family, sent)


FAMILIES: list[Callable[[datetime], Iterator[Metric]]] = [
    releases,
    jobs,
    check_evaluations,
    deliveries,
    incidents,
    signoffs,
    reports,
]


class DatabaseCollector(Collector):
    """Every family above, read at scrape time; the scrape's own duration last."""

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        now = timezone.now()
        for family in FAMILIES:
            yield from family(now)
        took = GaugeMetricFamily(
            PREFIX + "scrape_duration_seconds", "How long reading these figures took."
        )
        took.add_metric([], time.perf_counter() - started)
        yield took
