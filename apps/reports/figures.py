"""The figures of a report, each counted in SQL over the period and the one before it.

Every section is a handful of aggregate queries whatever the number of releases, samples or
results: counts and averages are `aggregate()`/`annotate()` with filters, per-release and
per-stage tables are one grouped query each. Durations are stored in seconds.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from apps.checklists.choices import ItemState
from apps.checklists.models import ChecklistItem
from apps.checks.choices import BadDirection, MetricKind, Verdict
from apps.checks.models import CheckResult
from apps.core.actors import ActorKind
from apps.incidents.choices import IncidentSource
from apps.incidents.models import Incident
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Event, Release, Service
from apps.signoffs.models import SignOff, SignOffRequest

from .schedule import Period

# An incident opened by a person or an alert this close to an automatic pause or rollback of the
# release confirms it. Incidents the breach itself opened do not: they exist for every breach.
CONFIRM_BEFORE = timedelta(hours=1)
CONFIRM_AFTER = timedelta(hours=24)
# A rollback nobody undid (no release of the same commit to the same place) for this long was
# kept: the people on it agreed it was needed.
ROLLBACK_KEPT_AFTER = timedelta(hours=24)
# Lists in the report stop here; the counts above them are complete.
LIST_LIMIT = 50

CONFIRMING_SOURCES = [IncidentSource.MANUAL, IncidentSource.ALERTMANAGER]


def seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def span(field: str, period: Period) -> Q:
    """`field` falls within the period."""
    return Q(**{f"{field}__gte": period.start, f"{field}__lt": period.end})


def elapsed(end: str, start: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def ratio(part: int | float, whole: int | float) -> float | None:
    return None if not whole else part / whole


def scoped_releases(service: Service | None) -> QuerySet[Release]:
    releases = Release.objects.all()
    return releases.filter(service=service) if service is not None else releases


def scoped_incidents(service: Service | None) -> QuerySet[Incident]:
    incidents = Incident.objects.all()
    return incidents.filter(service=service) if service is not None else incidents


def touched(period: Period) -> Q:
    """Releases that started or finished in the period, or were running during it."""
    return (
        span("started_at", period)
        | span("finished_at", period)
        | Q(started_at__lt=period.end)
        & (Q(finished_at__isnull=True) | Q(finished_at__gte=period.end))
        & ~Q(status=ReleaseStatus.PLANNED)
    )


# --- releases -------------------------------------------------------------------------------


def release_counts(service: Service | None, period: Period) -> dict[str, int]:
    finished = span("finished_at", period)
    return scoped_releases(service).aggregate(
        started=Count("pk", filter=span("started_at", period)),
        completed=Count("pk", filter=finished & Q(status=ReleaseStatus.COMPLETED)),
        rolled_back=Count("pk", filter=finished & Q(status=ReleaseStatus.ROLLED_BACK)),
        aborted=Count("pk", filter=finished & Q(status=ReleaseStatus.ABORTED)),
    )


def release_rows(service: Service | None, period: Period, now: datetime) -> list[dict[str, Any]]:
    """One row per release touched in the period: what happened to it and where it stands."""
    incidents = (
        Incident.objects.filter(release=OuterRef("pk"))
        .order_by()
        .values("release")
        .annotate(n=Count("pk"))
        .values("n")
    )
    releases = (
        scoped_releases(service)
        .filter(touched(period))
        .select_related("service", "environment", "current_stage")
        .annotate(incident_count=Coalesce(Subquery(incidents), 0))
        .order_by("service__name", "started_at", "pk")
    )
    rows = []
    for release in releases:
        stage = release.current_stage
        lead = None
        if (
            release.status == ReleaseStatus.COMPLETED
            and release.commit_time
            and release.finished_at
        ):
            lead = seconds(release.finished_at - release.commit_time)
        rows.append(
            {
                "id": release.pk,
                "service": release.service.name,
                "version": release.version,
                "environment": release.environment.name,
                "production": release.environment.is_production,
                "status": release.status,
                "status_label": release.get_status_display(),
                "stage": stage.name if stage and release.status in ReleaseStatus.active() else "",
                "traffic_percentage": release.traffic_percentage,
                "started_at": release.started_at.isoformat() if release.started_at else None,
                "finished_at": release.finished_at.isoformat() if release.finished_at else None,
                "lead_time": lead,
                "incidents": release.incident_count,
            }
        )
    return rows


# --- gates and sign-offs --------------------------------------------------------------------


def gate_decisions(service: Service | None, period: Period) -> list[dict[str, Any]]:
    """Every go decision with its signers, every no-go, and every override of a red gate."""
    events = (
        Event.objects.filter(span("created_at", period), release__in=scoped_releases(service))
        .filter(
            Q(verb__in=[EventVerb.SIGNOFF_DECIDED, EventVerb.GATE_OVERRIDDEN])
            | Q(verb=EventVerb.SIGNED_OFF, data__decision="no_go")
        )
        .select_related("release__service", "stage")
        .order_by("created_at", "pk")
    )
    rows = []
    for event in events[:LIST_LIMIT]:
        comment = event.reason
        if event.verb == EventVerb.SIGNOFF_DECIDED:
            decision = "go"
            signed = event.data.get("signers", [])
            signers = [s.get("signer", "") for s in signed]
            gate = event.data.get("gate", "")
            # The decision's own reason only restates the rule: show what the signers wrote.
            comment = "; ".join(
                f"{s['signer']}: {s['comment']}" for s in signed if s.get("comment")
            )
        elif event.verb == EventVerb.SIGNED_OFF:
            decision, signers, gate = "no-go", [event.actor_name], event.data.get("gate", "")
        else:
            decision, signers = "override", [event.actor_name]
            gate = event.data.get("step", "")
        rows.append(
            {
                "at": event.created_at.isoformat(),
                "release": f"{event.release.service.name} {event.release.version}",
                "release_id": event.release_id,
                "gate": gate or (f"leaving stage {event.stage.name}" if event.stage else ""),
                "decision": decision,
                "signers": signers,
                "comment": comment,
            }
        )
    return rows


def _first_request() -> Subquery:
    """When sign-offs were first asked for the same gate (release and stage, or the start)."""
    return Subquery(
        Event.objects.filter(
            release=OuterRef("release"),
            verb=EventVerb.SIGNOFFS_REQUESTED,
            created_at__lte=OuterRef("created_at"),
        )
        .annotate(gate_stage=Coalesce("stage_id", Value(0)))
        .filter(gate_stage=Coalesce(OuterRef("stage_id"), Value(0)))
        .order_by("created_at")
        .values("created_at")[:1]
    )


def _decided(service: Service | None, period: Period) -> QuerySet[Event]:
    return (
        Event.objects.filter(
            span("created_at", period),
            verb=EventVerb.SIGNOFF_DECIDED,
            release__in=scoped_releases(service),
        )
        .annotate(requested_at=_first_request())
        .annotate(
            wait=ExpressionWrapper(F("created_at") - F("requested_at"), DurationField()),
            gate_name=Coalesce("stage__name", Value("start"), output_field=CharField()),
        )
    )


def signoff_wait(service: Service | None, period: Period) -> dict[str, Any]:
    """Time from the first sign-off request of a gate to its go, per stage and overall."""
    decided = _decided(service, period)
    per_stage = (
        decided.order_by()
        .values("gate_name")
        .annotate(gates=Count("wait"), average=Avg("wait"), longest=Max("wait"))
        .order_by("gate_name")
    )
    overall = decided.aggregate(gates=Count("wait"), average=Avg("wait"), longest=Max("wait"))
    return {
        "gates": overall["gates"],
        "average": seconds(overall["average"]),
        "longest": seconds(overall["longest"]),
        "stages": [
            {
                "stage": row["gate_name"],
                "gates": row["gates"],
                "average": seconds(row["average"]),
                "longest": seconds(row["longest"]),
            }
            for row in per_stage
            if row["gates"]
        ],
    }


# --- metric checks --------------------------------------------------------------------------


def check_totals(service: Service | None, period: Period) -> dict[str, Any]:
    totals = CheckResult.objects.filter(
        span("at", period), release__in=scoped_releases(service)
    ).aggregate(
        evaluations=Count("pk"),
        passed=Count("pk", filter=Q(verdict=Verdict.PASS)),
        warned=Count("pk", filter=Q(verdict=Verdict.WARN)),
        failed=Count("pk", filter=Q(verdict=Verdict.FAIL)),
    )
    totals["pass_rate"] = ratio(totals["passed"], totals["evaluations"])
    return totals


def _format_value(value: float | None, kind: str | None, unit: str | None) -> str:
    if value is None:
        return "—"
    if kind == MetricKind.RATIO:
        return f"{value * 100:.4g} %"
    return f"{value:.4g} {unit or ''}".strip()


def check_rows(service: Service | None, period: Period) -> list[dict[str, Any]]:
    """Per release and criterion: evaluations, pass rate, and the worst value measured."""
    grouped = (
        CheckResult.objects.filter(span("at", period), release__in=scoped_releases(service))
        .order_by()
        .values(
            "release_id",
            "release__service__name",
            "release__version",
            "label",
            "criterion__metric__kind",
            "criterion__metric__unit",
            "criterion__metric__bad_direction",
        )
        .annotate(
            evaluations=Count("pk"),
            passed=Count("pk", filter=Q(verdict=Verdict.PASS)),
            failed=Count("pk", filter=Q(verdict=Verdict.FAIL)),
            highest=Max("value"),
            lowest=Min("value"),
        )
        .order_by("release__service__name", "release__version", "label")
    )
    rows = []
    for row in grouped:
        lower_is_bad = row["criterion__metric__bad_direction"] == BadDirection.LOWER
        worst = row["lowest"] if lower_is_bad else row["highest"]
        rows.append(
            {
                "release_id": row["release_id"],
                "release": f"{row['release__service__name']} {row['release__version']}",
                "criterion": row["label"],
                "evaluations": row["evaluations"],
                "passed": row["passed"],
                "failed": row["failed"],
                "pass_rate": ratio(row["passed"], row["evaluations"]),
                "worst": worst,
                "worst_display": _format_value(
                    worst, row["criterion__metric__kind"], row["criterion__metric__unit"]
                ),
            }
        )
    return rows


# --- incidents ------------------------------------------------------------------------------


def incident_totals(service: Service | None, period: Period) -> dict[str, Any]:
    totals = scoped_incidents(service).aggregate(
        opened=Count("pk", filter=span("opened_at", period)),
        resolved=Count("pk", filter=span("resolved_at", period)),
        acknowledged=Count("pk", filter=span("acknowledged_at", period)),
        time_to_acknowledge=Avg(
            elapsed("acknowledged_at", "opened_at"), filter=span("acknowledged_at", period)
        ),
        time_to_resolve=Avg(
            elapsed("resolved_at", "opened_at"), filter=span("resolved_at", period)
        ),
    )
    totals["time_to_acknowledge"] = seconds(totals["time_to_acknowledge"])
    totals["time_to_resolve"] = seconds(totals["time_to_resolve"])
    return totals


def _incident_row(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "title": incident.title,
        "service": incident.service.name,
        "severity": incident.severity_label,
        "status": incident.get_status_display(),
        "opened_at": incident.opened_at.isoformat(),
        "time_to_acknowledge": seconds(incident.time_to_acknowledge),
        "time_to_resolve": seconds(incident.time_to_resolve),
    }


def incident_rows(service: Service | None, period: Period) -> list[dict[str, Any]]:
    incidents = (
        scoped_incidents(service)
        .filter(span("opened_at", period) | span("resolved_at", period))
        .select_related("service")
        .order_by("opened_at", "pk")
    )
    return [_incident_row(i) for i in incidents[:LIST_LIMIT]]


# --- checklists -----------------------------------------------------------------------------


def checklist_completion(service: Service | None, period: Period) -> dict[str, Any]:
    """Items done over items, for the checklists of the releases touched in the period."""
    items = ChecklistItem.objects.filter(
        checklist__release__in=scoped_releases(service).filter(touched(period))
    )
    done = Q(state=ItemState.DONE)
    totals = items.aggregate(
        items=Count("pk"),
        done=Count("pk", filter=done),
        required_items=Count("pk", filter=Q(required=True)),
        required_done=Count("pk", filter=done & Q(required=True)),
        checklists=Count("checklist", distinct=True),
    )
    kinds = (
        items.order_by()
        .values("checklist__kind")
        .annotate(items=Count("pk"), done=Count("pk", filter=done))
        .order_by("checklist__kind")
    )
    totals["completion"] = ratio(totals["done"], totals["items"])
    totals["kinds"] = [
        {
            "kind": row["checklist__kind"],
            "items": row["items"],
            "done": row["done"],
            "completion": ratio(row["done"], row["items"]),
        }
        for row in kinds
    ]
    return totals


# --- automatic pauses and rollbacks ---------------------------------------------------------

CONFIRMED, FALSE_ALARM, UNDECIDED = "confirmed", "false_alarm", "undecided"


def _automatic_actions(service: Service | None, period: Period, now: datetime) -> QuerySet:
    """The checks' own pauses and rollbacks, each with what followed it."""
    after = {"release": OuterRef("release"), "created_at__gt": OuterRef("created_at")}
    confirming_incident = Incident.objects.filter(
        release=OuterRef("release"),
        source__in=CONFIRMING_SOURCES,
        opened_at__gte=OuterRef("created_at") - CONFIRM_BEFORE,
        opened_at__lte=OuterRef("created_at") + CONFIRM_AFTER,
    )
    redeployed = Release.objects.filter(
        service=OuterRef("release__service"),
        environment=OuterRef("release__environment"),
        commit_sha=OuterRef("release__commit_sha"),
        created_at__gt=OuterRef("created_at"),
    ).exclude(commit_sha="")
    return (
        Event.objects.filter(
            span("created_at", period),
            release__in=scoped_releases(service),
            verb__in=[EventVerb.PAUSED, EventVerb.ROLLED_BACK],
            actor_kind=ActorKind.SYSTEM,
        )
        .annotate(
            incident=Exists(confirming_incident),
            rolled_back_after=Exists(Event.objects.filter(verb=EventVerb.ROLLED_BACK, **after)),
            resumed_after=Exists(Event.objects.filter(verb=EventVerb.RESUMED, **after)),
            redeployed=Exists(redeployed),
        )
        .annotate(
            outcome=Case(
                When(incident=True, then=Value(CONFIRMED)),
                When(verb=EventVerb.PAUSED, rolled_back_after=True, then=Value(CONFIRMED)),
                When(verb=EventVerb.PAUSED, resumed_after=True, then=Value(FALSE_ALARM)),
                When(verb=EventVerb.ROLLED_BACK, redeployed=True, then=Value(FALSE_ALARM)),
                When(
                    verb=EventVerb.ROLLED_BACK,
                    created_at__lte=now - ROLLBACK_KEPT_AFTER,
                    then=Value(CONFIRMED),
                ),
                default=Value(UNDECIDED),
                output_field=CharField(),
            )
        )
    )


def automatic_actions(service: Service | None, period: Period, now: datetime) -> dict[str, Any]:
    """How many automatic pauses and rollbacks a real problem confirmed: the checks' precision."""
    actions = _automatic_actions(service, period, now)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in actions.order_by().values("verb", "outcome").annotate(n=Count("pk")):
        counts[row["verb"]][row["outcome"]] = row["n"]
        counts["all"][row["outcome"]] += row["n"]

    def summary(key: str) -> dict[str, Any]:
        c = counts.get(key, {})
        confirmed, false_alarm = c.get(CONFIRMED, 0), c.get(FALSE_ALARM, 0)
        return {
            "total": sum(c.values()),
            CONFIRMED: confirmed,
            FALSE_ALARM: false_alarm,
            UNDECIDED: c.get(UNDECIDED, 0),
            "precision": ratio(confirmed, confirmed + false_alarm),
        }

    rows = [
        {
            "at": event.created_at.isoformat(),
            "release": f"{event.release.service.name} {event.release.version}",
            "release_id": event.release_id,
            "action": "pause" if event.verb == EventVerb.PAUSED else "rollback",
            "outcome": event.outcome,
            "reason": event.reason,
        }
        for event in actions.select_related("release__service").order_by("created_at", "pk")[
            :LIST_LIMIT
        ]
    ]
    return {
        "pauses": summary(EventVerb.PAUSED),
        "rollbacks": summary(EventVerb.ROLLED_BACK),
        "all": summary("all"),
        "rows": rows,
    }


# --- next steps -----------------------------------------------------------------------------


def pending_signoffs(service: Service | None) -> list[dict[str, Any]]:
    """People asked to sign the gate a release waits at now, who have not signed it."""
    releases = scoped_releases(service)
    signed = SignOff.objects.standing().filter(
        release=OuterRef("release"), gate_key=OuterRef("gate_key"), signer=OuterRef("user")
    )
    decided = Event.objects.filter(
        release=OuterRef("release"),
        verb=EventVerb.SIGNOFF_DECIDED,
        stage=OuterRef("stage"),
        created_at__gte=OuterRef("requested_at"),
    )
    requests = (
        SignOffRequest.objects.filter(release__in=releases)
        .filter(
            Q(stage__isnull=True, release__status=ReleaseStatus.PLANNED)
            | Q(stage=F("release__current_stage"), release__status__in=ReleaseStatus.active())
        )
        .exclude(Exists(signed))
        .exclude(Exists(decided))
        .select_related("release__service", "stage", "user")
        .order_by("requested_at", "pk")
    )
    gates: dict[tuple[int, int | None], dict[str, Any]] = {}
    for request in requests:
        key = (request.release_id, request.stage_id)
        gate = gates.setdefault(
            key,
            {
                "release": f"{request.release.service.name} {request.release.version}",
                "release_id": request.release_id,
                "gate": f"leaving stage {request.stage.name}" if request.stage else "the start",
                "since": request.requested_at.isoformat(),
                "waiting_for": [],
            },
        )
        gate["waiting_for"].append(request.user.get_username())
    return list(gates.values())[:LIST_LIMIT]


def due_to_advance(service: Service | None, now: datetime) -> list[dict[str, Any]]:
    """Running releases with when their current stage's soak ends (the gate still decides)."""
    releases = (
        scoped_releases(service)
        .filter(status__in=ReleaseStatus.active(), current_stage__isnull=False)
        .select_related("service", "environment", "current_stage")
    )
    rows = []
    for release in releases:
        stage = release.current_stage
        remaining = stage.min_soak - stage.soaked(now, release.paused_at)
        rows.append(
            {
                "release": f"{release.service.name} {release.version}",
                "release_id": release.pk,
                "environment": release.environment.name,
                "status": release.get_status_display(),
                "stage": stage.name,
                "traffic_percentage": stage.traffic_percentage,
                "auto_advance": stage.auto_advance,
                "soak_remaining": max(remaining.total_seconds(), 0.0),
            }
        )
    rows.sort(key=lambda r: (r["status"] != "In progress", r["soak_remaining"], r["release"]))
    return rows[:LIST_LIMIT]


def open_incidents(service: Service | None) -> list[dict[str, Any]]:
    incidents = (
        scoped_incidents(service)
        .unresolved()
        .select_related("service")
        .order_by("severity", "opened_at", "pk")
    )
    return [_incident_row(i) for i in incidents[:LIST_LIMIT]]
