"""Escalation: page each level of an incident's timetable once, when the incident's age reaches it.

The timetable is the policy frozen onto the incident when escalation starts (`Incident.timetable`):
editing the policy mid-incident moves nothing. Who a level's rotation puts on call, and each
contact's address, are read when paging.

An incident counts the rows of its timetable already paged (`escalation_step`). Paging
moves that count forward with one conditional UPDATE (`WHERE escalation_step = <what we read>`
and the status still escalates); only the worker whose UPDATE matched pages, inside the same
transaction. A second tick running at the same moment matches nothing and pages nobody, and
each page also has a unique idempotency key (incident, level, person, repeat round).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Prefetch, Q
from django.utils import timezone

from apps.core.actors import Actor
from apps.jobs.runner import job

from . import notify
from .choices import EscalateWhile, IncidentStatus, IncidentVerb
from .models import (
    Contact,
    EscalationStep,
    FrozenLevel,
    Incident,
    IncidentEvent,
    OnCallRotation,
    RotationOverride,
)

logger = logging.getLogger(__name__)

ACTOR = Actor.system("escalation")


@dataclass
class EscalationReport:
    """What one escalation tick looked at and did."""

    examined: int = 0
    escalated: list[int] = field(default_factory=list)
    pages: int = 0
    raced: int = 0


def policy_prefetches(prefix: str, now: datetime) -> list[str | Prefetch]:
    """What showing a policy's table needs (levels, contacts, rotations, current overrides)."""
    return [
        f"{prefix}levels__contacts",
        f"{prefix}levels__rotation__members__contact",
        Prefetch(
            f"{prefix}levels__rotation__overrides",
            queryset=RotationOverride.objects.filter(ends_at__gt=now).select_related("contact"),
        ),
    ]


def escalating_statuses(incident: Incident) -> list[str]:
    timetable = incident.timetable
    if timetable is None:
        return []
    if timetable.escalate_while == EscalateWhile.UNRESOLVED:
        return IncidentStatus.unresolved()
    return [IncidentStatus.OPEN]


def due_steps(incident: Incident, now: datetime) -> list[EscalationStep]:
    """The timetable rows due by `now` and not paged yet (none once the status stops it)."""
    if incident.status not in escalating_statuses(incident):
        return []
    elapsed = now - incident.escalation_started_at
    return [
        step
        for step in incident.timetable.steps()
        if step.number > incident.escalation_step and step.due_after <= elapsed
    ]


def people_at(level: FrozenLevel, now: datetime) -> tuple[list[Contact], OnCallRotation | None]:
    """Who a frozen level pages at `now`: its contacts still active, and the rotation's on-call.

    The rotation is asked now, not at freezing: a hand-off or an override made during the
    incident decides who is paged. A contact or rotation deleted since is not paged.
    """
    people = list(Contact.objects.filter(pk__in=level.contact_ids, active=True))
    rotation = None
    if level.rotation_id is not None:
        rotation = (
            OnCallRotation.objects.prefetch_related(
                "members__contact",
                Prefetch(
                    "overrides",
                    queryset=RotationOverride.objects.filter(ends_at__gt=now).select_related(
                        "contact"
                    ),
                ),
            )
            .filter(pk=level.rotation_id)
            .first()
        )
        on_call = rotation.on_call_at(now) if rotation is not None else None
        if on_call is not None and on_call.active:
            people.append(on_call)
    unique: dict[int, Contact] = {}
    for person in people:
        unique.setdefault(person.pk, person)
    return list(unique.values()), rotation


def escalate(incident: Incident, now: datetime) -> int | None:
    """Page every row now due, once; returns the pages made, None when another worker won."""
    steps = due_steps(incident, now)
    if not steps:
        return 0
    with transaction.atomic():
        claimed = Incident.objects.filter(
            pk=incident.pk,
            escalation_step=incident.escalation_step,
            reopen_count=incident.reopen_count,
            status__in=escalating_statuses(incident),
        ).update(escalation_step=steps[-1].number)
        if not claimed:
            return None
        incident.escalation_step = steps[-1].number
        return sum(_page(incident, step, now) for step in steps)


def _page(incident: Incident, step: EscalationStep, now: datetime) -> int:
    level = step.level
    if not level.applies_to(incident.severity):
        return 0  # e.g. "Level 4: CTO, critical incidents only" for a SEV3
    people, rotation = people_at(level, now)
    data = {
        "level": level.position,
        "round": step.round,
        "after_minutes": int(step.due_after.total_seconds() // 60),
        "paged": [person.name for person in people],
    }
    if rotation is not None:
        data["rotation"] = rotation.name
    event = IncidentEvent.record(incident, IncidentVerb.ESCALATED, ACTOR, data=data)
    deliveries = notify.page(incident, step, people, event)
    notify.announce(event)
    return len(deliveries)


def escalate_due(now: datetime | None = None) -> EscalationReport:
    """The tick: move every escalating incident to the level its age reaches.

    Each incident is one item of the job: one whose paging fails (a rotation that cannot say
    who is on call, say) is recorded and rolled back, and the other incidents are paged.
    """
    now = now or timezone.now()
    report = EscalationReport()
    candidates = (
        Incident.objects.unresolved()
        .filter(escalation_snapshot__isnull=False)
        .filter(
            Q(status=IncidentStatus.OPEN)
            | Q(escalation_snapshot__escalate_while=EscalateWhile.UNRESOLVED)
        )
        .select_related("service")
        .order_by("opened_at", "pk")
    )
    with job("incidents.escalate") as run:
        for incident in candidates:
            report.examined += 1
            before = incident.escalation_step
            # No savepoint of its own: escalate() claims and pages in one transaction, and an
            # incident with nothing due (most of them, every minute) must cost no queries.
            with run.item(incident, atomic=False):
                pages = escalate(incident, now)
                if pages is None:
                    report.raced += 1
                    logger.info("Escalation of incident %s was done by another worker", incident.pk)
                elif incident.escalation_step != before:
                    report.escalated.append(incident.pk)
                    report.pages += pages
    return report
