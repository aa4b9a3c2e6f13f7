"""The DORA four keys, per service and overall, and the weekly series behind the charts.

A deployment is a release completed in a production environment (Environment.is_production):
a plan may go staging, then production, so what counts is where the release was when it finished
— its current stage's environment (the last stage for a completed one, the stage it was rolled
back at for a rolled-back one). A release rolled back in staging never reached production and is
no production failure. A release finished at no stage counts by its own environment.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncWeek

from apps.incidents.models import Incident
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release, Service

from .figures import elapsed, ratio, scoped_incidents, scoped_releases, seconds, span
from .schedule import Period, local_midnight, period_containing, zone

DEFINITIONS = [
    {
        "key": "deployment_frequency",
        "name": "Deployment frequency",
        "definition": "Releases completed in a production environment (their last stage's) "
        "during the period (and the same per day).",
    },
    {
        "key": "lead_time",
        "name": "Lead time for changes",
        "definition": "Mean time from the commit (its time as sent by CI) to the release's "
        "completion in production, over the deployments of the period that carry a commit time.",
    },
    {
        "key": "change_failure_rate",
        "name": "Change failure rate",
        "definition": "Production releases finished in the period that failed (rolled back at a "
        "production stage, or completed but linked to an incident) over all production releases "
        "finished in the period (completed, or rolled back at a production stage).",
    },
    {
        "key": "time_to_restore",
        "name": "Time to restore service",
        "definition": "Mean time from an incident's opening to its resolution, over the incidents "
        "resolved in the period.",
    },
]

CHART_WEEKS = 8


def _production(service: Service | None) -> QuerySet[Release]:
    linked = Incident.objects.filter(release=OuterRef("pk"))
    finished_in_production = Q(current_stage__environment__is_production=True) | Q(
        current_stage__isnull=True, environment__is_production=True
    )
    return (
        scoped_releases(service)
        .filter(finished_in_production)
        .annotate(has_incident=Exists(linked))
    )


def _release_aggregates(period: Period) -> dict[str, Any]:
    finished = span("finished_at", period)
    completed = finished & Q(status=ReleaseStatus.COMPLETED)
    rolled_back = finished & Q(status=ReleaseStatus.ROLLED_BACK)
    return {
        "deployments": Count("pk", filter=completed),
        "finished": Count("pk", filter=completed | rolled_back),
        "failed": Count("pk", filter=rolled_back | (completed & Q(has_incident=True))),
        "lead_time": Avg(
            elapsed("finished_at", "commit_time"),
            filter=completed & Q(commit_time__isnull=False),
        ),
        "lead_time_samples": Count("pk", filter=completed & Q(commit_time__isnull=False)),
    }


def _incident_aggregates(period: Period) -> dict[str, Any]:
    resolved = span("resolved_at", period)
    return {
        "time_to_restore": Avg(elapsed("resolved_at", "opened_at"), filter=resolved),
        "restored": Count("pk", filter=resolved),
    }


def _keys(releases: dict[str, Any], incidents: dict[str, Any], days: float) -> dict[str, Any]:
    return {
        "deployments": releases.get("deployments", 0),
        "deployments_per_day": releases.get("deployments", 0) / days,
        "lead_time": seconds(releases.get("lead_time")),
        "lead_time_samples": releases.get("lead_time_samples", 0),
        "finished": releases.get("finished", 0),
        "failed": releases.get("failed", 0),
        "change_failure_rate": ratio(releases.get("failed", 0), releases.get("finished", 0)),
        "time_to_restore": seconds(incidents.get("time_to_restore")),
        "restored": incidents.get("restored", 0),
    }


def _days(period: Period) -> float:
    # Calendar days, not hours / 24: a week across a daylight-saving change is still 7 days.
    return float((period.last_day - period.first_day).days + 1)


def four_keys(service: Service | None, period: Period) -> dict[str, Any]:
    """The four keys overall (for the scope) and per service, for one period."""
    days = _days(period)
    production = _production(service)
    incidents = scoped_incidents(service)
    overall = _keys(
        production.aggregate(**_release_aggregates(period)),
        incidents.aggregate(**_incident_aggregates(period)),
        days,
    )
    by_service_releases = {
        row["service_id"]: row
        for row in production.order_by()
        .values("service_id")
        .annotate(**_release_aggregates(period))
    }
    by_service_incidents = {
        row["service_id"]: row
        for row in incidents.order_by()
        .values("service_id")
        .annotate(**_incident_aggregates(period))
    }
    ids = set(by_service_releases) | set(by_service_incidents)
    names = dict(Service.objects.filter(pk__in=ids).values_list("pk", "name"))
    services = []
    for service_id in sorted(ids, key=lambda pk: names.get(pk, "")):
        keys = _keys(
            by_service_releases.get(service_id, {}),
            by_service_incidents.get(service_id, {}),
            days,
        )
        if keys["deployments"] or keys["finished"] or keys["restored"]:
            services.append({"service": names.get(service_id, ""), **keys})
    return {"overall": overall, "services": services}


def weekly_series(service: Service | None, period: Period) -> list[dict[str, Any]]:
    """Production releases finished per week, completed and rolled back, with the failure rate,
    for the CHART_WEEKS weeks ending with the report's period (local ISO weeks)."""
    tz = zone(period.time_zone)
    last_week = period_containing("weekly", period.last_day, period.time_zone)
    first_monday: date = last_week.first_day - timedelta(weeks=CHART_WEEKS - 1)
    window = Period(
        kind="weekly",
        start=local_midnight(first_monday, tz),
        end=last_week.end,
        time_zone=period.time_zone,
    )
    finished = span("finished_at", window)
    completed = Q(status=ReleaseStatus.COMPLETED)
    rolled_back = Q(status=ReleaseStatus.ROLLED_BACK)
    rows = (
        _production(service)
        .filter(finished, status__in=[ReleaseStatus.COMPLETED, ReleaseStatus.ROLLED_BACK])
        .annotate(week=TruncWeek("finished_at", tzinfo=tz))
        .order_by()
        .values("week")
        .annotate(
            completed=Count("pk", filter=completed),
            rolled_back=Count("pk", filter=rolled_back),
            failed=Count("pk", filter=rolled_back | (completed & Q(has_incident=True))),
        )
    )
    by_week = {row["week"].astimezone(tz).date(): row for row in rows}
    series = []
    for index in range(CHART_WEEKS):
        monday = first_monday + timedelta(weeks=index)
        row = by_week.get(monday, {})
        done, back, failed = (
            row.get("completed", 0),
            row.get("rolled_back", 0),
            row.get("failed", 0),
        )
        series.append(
            {
                "week": monday.isoformat(),
                "label": f"W{monday.isocalendar().week}",
                "completed": done,
                "rolled_back": back,
                "failed": failed,
                "change_failure_rate": ratio(failed, done + back),
            }
        )
    return series
