"""What the pages show of incidents, when the incidents app is installed (otherwise nothing).

The incidents app owns incidents, their lifecycle and their own page (/incidents/<id>/, with
the acknowledge / resolve confirmations); the pages add the list at /incidents/ and the
incidents of a release and of a service on the release page and the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps as django_apps
from django.db.models import Case, Count, IntegerField, Prefetch, Q, Value, When
from django.utils import timezone

from apps.core.durations import format_duration
from apps.releases.models import Release

RESOLVED_SHOWN_FOR = timedelta(days=7)
LIST_LIMIT = 200


def installed() -> bool:
    return django_apps.is_installed("apps.incidents")


def _order() -> list[Any]:
    """Unresolved first, then by severity (SEV1 first), then newest."""
    from apps.incidents.choices import IncidentStatus

    return [
        Case(
            When(status__in=IncidentStatus.unresolved(), then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        ),
        "severity",
        "-opened_at",
        "-pk",
    ]


def for_release(release: Release) -> list[Any]:
    """The release's incidents, unresolved first: one query."""
    if not installed():
        return []
    from apps.incidents.models import Incident

    return list(Incident.objects.filter(release_id=release.pk).order_by(*_order())[:50])


def open_counts(releases: list[Release]) -> dict[int, int]:
    """Unresolved incidents per service of the given releases: one query."""
    if not installed() or not releases:
        return {}
    from apps.incidents.models import Incident

    rows = (
        Incident.objects.unresolved()
        .filter(service_id__in={r.service_id for r in releases})
        .values("service_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["service_id"]: row["n"] for row in rows}


def open_total() -> int:
    if not installed():
        return 0
    from apps.incidents.models import Incident

    return Incident.objects.unresolved().count()


@dataclass
class IncidentRow:
    """An incident in the list: its age, how far it escalated, who was paged, what I may do."""

    incident: Any
    age: str
    level: str
    paged: list[str] = field(default_factory=list)
    may_respond: bool = False
    actions: list[str] = field(default_factory=list)


def _age(since: datetime, now: datetime) -> str:
    return format_duration(now - since)


def _level(incident: Any) -> str:
    """The escalation level reached, from the incident's frozen timetable: "L2", "L1 (repeat 1)"."""
    timetable = incident.timetable
    if timetable is None:
        return "no policy"
    if not incident.escalation_step:
        return "not paged yet"
    step = timetable.step(incident.escalation_step)
    if step is None:
        return "—"
    text = step.level.label
    return text + (f" (repeat {step.round})" if step.round else "")


def incident_list(user: Any, *, service: str = "", show_all: bool = False) -> dict[str, Any]:
    """Unresolved incidents, then those resolved in the last week (all with `show_all`): a fixed
    number of queries whatever the number of incidents, pages or levels."""
    from apps.incidents import lifecycle
    from apps.incidents.choices import Channel, IncidentStatus
    from apps.incidents.models import Incident, NotificationDelivery

    now = timezone.now()
    incidents = Incident.objects.select_related("service", "release").prefetch_related(
        Prefetch(
            "deliveries",
            queryset=NotificationDelivery.objects.filter(channel=Channel.EMAIL)
            .select_related("contact")
            .order_by("created_at", "pk"),
            to_attr="pages",
        ),
    )
    if not show_all:
        incidents = incidents.filter(
            Q(status__in=IncidentStatus.unresolved()) | Q(resolved_at__gte=now - RESOLVED_SHOWN_FOR)
        )
    if service:
        incidents = incidents.filter(service__slug=service)
    may_respond_all = user.has_perm(lifecycle.RESPOND_PERM)
    rows = []
    for incident in incidents.order_by(*_order())[:LIST_LIMIT]:
        paged = []
        for delivery in incident.pages:
            name = delivery.contact.name if delivery.contact else delivery.target
            label = f"{name} (L{delivery.level})" if delivery.level else name
            if label not in paged:
                paged.append(label)
        # The incidents app decides again on POST; this only says whether to offer the buttons.
        was_paged = any(
            d.contact is not None and d.contact.user_id == user.pk for d in incident.pages
        )
        rows.append(
            IncidentRow(
                incident=incident,
                age=_age(incident.opened_at, now),
                level=_level(incident),
                paged=paged,
                may_respond=may_respond_all or was_paged,
                actions=lifecycle.allowed_actions(incident),
            )
        )
    return {
        "rows": rows,
        "now": now,
        "service": service,
        "show_all": show_all,
        "unresolved": sum(r.incident.status in IncidentStatus.unresolved() for r in rows),
        "resolved_days": RESOLVED_SHOWN_FOR.days,
        "limit": LIST_LIMIT,
    }
