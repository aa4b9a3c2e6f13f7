"""Every change of an incident's status goes through here.

Each transition checks the actor may act and that the status allows it, locks the incident row,
stamps the times, writes one timeline entry and queues the webhook post after commit. The admin,
the pages, the API, Alertmanager and the metric-check tick call these functions; nothing else
sets Incident.status.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.actors import Actor, ActorKind
from apps.releases import gate_inputs
from apps.releases.models import Release, Service

from . import escalation, notify, routing
from .choices import IncidentSource, IncidentStatus, IncidentVerb, Severity
from .models import (
    EscalationPolicy,
    Incident,
    IncidentEvent,
    IncidentRouting,
    NotificationDelivery,
)

RESPOND_PERM = "incidents.respond_incident"
BREACH_ACTOR = "metric-checks"


class IncidentError(Exception):
    """The change is not allowed in the incident's current state (HTTP 409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class IncidentForbidden(IncidentError):
    """The actor may not change this incident (HTTP 403)."""


# action -> statuses it may start from
ALLOWED_FROM: dict[str, list[str]] = {
    "acknowledge": [IncidentStatus.OPEN],
    "mitigate": [IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED],
    "resolve": IncidentStatus.unresolved(),
    "reopen": [IncidentStatus.RESOLVED],
}


def allowed_actions(incident: Incident) -> list[str]:
    return [action for action, sources in ALLOWED_FROM.items() if incident.status in sources]


def was_paged(user: Any, incident: Incident) -> bool:
    """Was this person paged for the incident (through the contact linked to their user)?"""
    return NotificationDelivery.objects.filter(incident=incident, contact__user=user).exists()


def may_respond(actor: Actor, incident: Incident) -> bool:
    """Responders hold the permission, or were paged for this incident; tokens stay in scope."""
    if not actor.may_touch_service(incident.service_id):
        return False
    if actor.kind == ActorKind.USER:
        return actor.has_perm(RESPOND_PERM) or was_paged(actor.user, incident)
    return True


def _authorize(actor: Actor, incident: Incident) -> None:
    if not actor.may_touch_service(incident.service_id):
        raise IncidentForbidden(
            f"This token may not act on service {incident.service.slug!r}'s incidents."
        )
    if not may_respond(actor, incident):
        raise IncidentForbidden(
            f"{actor.name} may not respond to incidents: ask for the responder role, or be "
            "paged for this one."
        )


def describe_status(incident: Incident) -> str:
    """The status in words, e.g. "acknowledged (by rita at 2025-03-01 10:02 UTC)"."""
    text = incident.get_status_display().lower()
    when = {
        IncidentStatus.ACKNOWLEDGED: incident.acknowledged_at,
        IncidentStatus.MITIGATED: incident.mitigated_at,
        IncidentStatus.RESOLVED: incident.resolved_at,
    }.get(incident.status)
    if when is None:
        return text
    # The status values double as the verbs of the timeline entries that set them.
    by = incident.events.filter(verb=incident.status).order_by("-created_at", "-id").first()
    who = f"by {by.actor_name} " if by else ""
    return f"{text} ({who}at {when:%Y-%m-%d %H:%M %Z})"


def _run(
    incident: Incident,
    action: str,
    actor: Actor,
    apply: Callable[[Incident, datetime], IncidentEvent],
) -> Incident:
    """Lock, check, apply and record one transition; refresh the caller's instance."""
    with transaction.atomic():
        locked = (
            Incident.objects.select_for_update(of=("self",))
            .select_related("service", "policy")
            .get(pk=incident.pk)
        )
        _authorize(actor, locked)
        if locked.status not in ALLOWED_FROM[action]:
            raise IncidentError(
                f"Cannot {action} incident #{locked.pk}: it is {describe_status(locked)}."
            )
        event = apply(locked, timezone.now())
        notify.announce(event)
        # The incident holds (or stops holding) every rollout of its service.
        gate_inputs.changed(services=[locked.service_id])
    incident.refresh_from_db()
    return incident


def acknowledge(incident: Incident, *, actor: Actor, reason: str = "") -> Incident:
    """Open → acknowledged: someone is on it; under the usual policy escalation stops."""

    def apply(i: Incident, now: datetime) -> IncidentEvent:
        i.status, i.acknowledged_at = IncidentStatus.ACKNOWLEDGED, now
        i.save(update_fields=["status", "acknowledged_at", "updated_at"])
        return IncidentEvent.record(
            i, IncidentVerb.ACKNOWLEDGED, actor, reason=reason, data=_ages(i, now)
        )

    return _run(incident, "acknowledge", actor, apply)


def mitigate(incident: Incident, *, actor: Actor, reason: str = "") -> Incident:
    """The impact is contained; the cause may still need work."""

    def apply(i: Incident, now: datetime) -> IncidentEvent:
        i.status, i.mitigated_at = IncidentStatus.MITIGATED, now
        i.acknowledged_at = i.acknowledged_at or now
        i.save(update_fields=["status", "mitigated_at", "acknowledged_at", "updated_at"])
        return IncidentEvent.record(i, IncidentVerb.MITIGATED, actor, reason=reason)

    return _run(incident, "mitigate", actor, apply)


def resolve(incident: Incident, *, actor: Actor, reason: str = "") -> Incident:
    """Fixed: escalation stops and the service's rollouts are no longer held by it."""

    def apply(i: Incident, now: datetime) -> IncidentEvent:
        i.status, i.resolved_at = IncidentStatus.RESOLVED, now
        i.save(update_fields=["status", "resolved_at", "updated_at"])
        return IncidentEvent.record(
            i, IncidentVerb.RESOLVED, actor, reason=reason, data=_ages(i, now)
        )

    return _run(incident, "resolve", actor, apply)


def reopen(incident: Incident, *, actor: Actor, reason: str = "") -> Incident:
    """Resolved → open again: the escalation starts over from the first level."""

    def apply(i: Incident, now: datetime) -> IncidentEvent:
        i.status = IncidentStatus.OPEN
        i.acknowledged_at = i.mitigated_at = i.resolved_at = None
        i.escalation_started_at, i.escalation_step = now, 0
        # The new cycle pages by the policy as it is now (it may have been edited since).
        i.freeze_escalation(now)
        i.reopen_count += 1
        try:
            with transaction.atomic():
                i.save()
        except IntegrityError as exc:
            other = Incident.objects.unresolved().filter(
                service_id=i.service_id, fingerprint=i.fingerprint
            )
            raise IncidentError(
                f"Cannot reopen incident #{i.pk}: incident #{other.first().pk} is open for the "
                "same alert; work on that one."
            ) from exc
        event = IncidentEvent.record(i, IncidentVerb.REOPENED, actor, reason=reason)
        escalation.escalate(i, now)
        return event

    return _run(incident, "reopen", actor, apply)


def update(
    incident: Incident,
    *,
    actor: Actor,
    reason: str = "",
    **changes: Any,
) -> Incident:
    """Change the title, description, severity or release; the timeline records what changed."""
    editable = {"title", "description", "severity", "release"}
    unknown = set(changes) - editable
    if unknown:
        raise ValidationError(f"These incident fields cannot be changed: {', '.join(unknown)}.")
    with transaction.atomic():
        locked = Incident.objects.select_for_update(of=("self",)).get(pk=incident.pk)
        _authorize(actor, locked)
        release = changes.get("release")
        if release is not None and release.service_id != locked.service_id:
            raise ValidationError(
                {"release": f"Release {release.pk} is not a release of this service."}
            )
        diff = {}
        for name, value in changes.items():
            before = getattr(locked, name)
            if before != value:
                diff[name] = {"from": _plain(before), "to": _plain(value)}
                setattr(locked, name, value)
        if diff:
            locked.full_clean(exclude=["service", "policy", "labels", "link"])
            locked.save()
            notify.announce(
                IncidentEvent.record(locked, IncidentVerb.UPDATED, actor, reason=reason, data=diff)
            )
            gate_inputs.changed(services=[locked.service_id])
    incident.refresh_from_db()
    return incident


def _plain(value: Any) -> Any:
    return value.pk if hasattr(value, "pk") else value


def _ages(incident: Incident, now: datetime) -> dict[str, int]:
    return {"seconds_since_opened": int((now - incident.opened_at).total_seconds())}


# --- opening ------------------------------------------------------------------------------


def open_incident(
    *,
    service: Service,
    title: str,
    actor: Actor,
    severity: str = Severity.SEV3,
    source: str = IncidentSource.MANUAL,
    description: str = "",
    release: Release | None = None,
    fingerprint: str = "",
    labels: dict[str, Any] | None = None,
    link: str = "",
    trigger_key: str = "",
    event_data: dict[str, Any] | None = None,
    policy: EscalationPolicy | None = None,
) -> Incident:
    """Open an incident, record it, tell the webhook and page the first level at once.

    `policy` is one named by the person opening it by hand; without it the routing rules, then
    the service's policy, choose (apps.incidents.routing). `event_data` is added to the
    "opened" entry of the timeline (a breach names its criterion).
    """
    if release is not None and release.service_id != service.pk:
        raise ValidationError({"release": f"Release {release.pk} is not a release of {service}."})
    if not actor.may_touch_service(service.pk):
        raise IncidentForbidden(f"This token may not act on service {service.slug!r}.")
    if severity not in Severity.values:
        choices = ", ".join(Severity.values)
        raise ValidationError(
            {"severity": f"{severity!r} is not a severity; use one of {choices}."}
        )
    service_routing = (
        IncidentRouting.objects.filter(service=service).select_related("policy").first()
    )
    choice = routing.choose(
        service_id=service.pk,
        severity=severity,
        source=source,
        labels=labels,
        routing=service_routing,
        named=policy,
        named_by=actor.name,
    )
    now = timezone.now()
    incident = Incident(
        service=service,
        release=release,
        title=title.strip()[:200],
        description=description,
        severity=severity,
        source=source,
        fingerprint=fingerprint,
        labels=labels or {},
        link=link,
        policy=choice.policy,
        routed_by=choice.routed_by,
        routing_rule=choice.rule,
        routing_note=choice.note,
        opened_at=now,
        last_triggered_at=now,
        last_trigger_key=trigger_key[:100],
        escalation_started_at=now,
    )
    incident.freeze_escalation(now)
    incident.full_clean(exclude=["service", "release", "policy"], validate_constraints=False)
    with transaction.atomic():
        incident.save(force_insert=True)
        data: dict[str, Any] = {**(event_data or {}), "severity": severity, "source": source}
        data["policy"] = {
            "id": choice.policy.pk if choice.policy else None,
            "name": choice.policy.name if choice.policy else "",
            "routed_by": choice.routed_by,
            "rule": choice.rule.pk if choice.rule else None,
            "note": choice.note,
        }
        if release is not None:
            data["release"] = {"id": release.pk, "version": release.version}
        if trigger_key:
            # Recorded so that a later repeat of this very occurrence adds nothing, even after
            # other occurrences (another criterion of the same breach) have joined since.
            data["key"] = trigger_key[:100]
        event = IncidentEvent.record(
            incident, IncidentVerb.OPENED, actor, reason=description, data=data
        )
        notify.announce(event, routing=service_routing)
        escalation.escalate(incident, now)
        gate_inputs.changed(services=[incident.service_id])
    return incident


def trigger(
    *,
    service: Service,
    fingerprint: str,
    title: str,
    actor: Actor,
    severity: str,
    source: str,
    description: str = "",
    release: Release | None = None,
    labels: dict[str, Any] | None = None,
    link: str = "",
    key: str = "",
    event_data: dict[str, Any] | None = None,
) -> tuple[Incident, bool]:
    """Open an incident for the fingerprint, or add the repeat to the unresolved one's timeline.

    `key` names the occurrence (a criterion's breach episode): a repeat with a key already in the
    incident's timeline adds nothing. `event_data` goes into the timeline entry written.
    Returns (incident, opened). Safe when two workers trigger the same fingerprint at once: the
    unique constraint lets one open it, and the other records a repeat (or nothing, when its key
    is already recorded: the check runs under the incident's row lock).
    """
    for _ in range(3):
        existing = (
            Incident.objects.unresolved().filter(service=service, fingerprint=fingerprint).first()
        )
        if existing is not None:
            repeated = _triggered_again(
                existing,
                actor,
                key=key,
                severity=severity,
                description=description,
                labels=labels,
                event_data=event_data,
            )
            if repeated is not None:
                return repeated, False
            continue  # resolved meanwhile: open a new one
        try:
            with transaction.atomic():
                incident = open_incident(
                    service=service,
                    title=title,
                    actor=actor,
                    severity=severity,
                    source=source,
                    description=description,
                    release=release,
                    fingerprint=fingerprint,
                    labels=labels,
                    link=link,
                    trigger_key=key,
                    event_data=event_data,
                )
            return incident, True
        except IntegrityError:
            continue  # another worker opened it between our look-up and our insert
    raise IncidentError(f"Could not open or update the incident for {fingerprint!r}; try again.")


def _triggered_again(
    incident: Incident,
    actor: Actor,
    *,
    key: str,
    severity: str,
    description: str,
    labels: dict[str, Any] | None,
    event_data: dict[str, Any] | None = None,
) -> Incident | None:
    """Record one repeat on the unresolved incident; None if it was resolved meanwhile."""
    with transaction.atomic():
        locked = Incident.objects.select_for_update(of=("self",)).get(pk=incident.pk)
        if locked.status == IncidentStatus.RESOLVED:
            return None
        if key and _key_recorded(locked, key[:100]):
            return locked
        now = timezone.now()
        locked.trigger_count += 1
        locked.last_triggered_at, locked.last_trigger_key = now, key[:100]
        data: dict[str, Any] = {**(event_data or {}), "count": locked.trigger_count}
        if key:
            data["key"] = key[:100]  # as the lookup above and the opening entry store it
        if Severity.rank(severity) < Severity.rank(locked.severity):
            # A repeat may make things worse, never better: only a person lowers a severity.
            data["severity"] = {"from": locked.severity, "to": severity}
            locked.severity = severity
        if labels:
            locked.labels = labels
        locked.save()
        IncidentEvent.record(
            locked, IncidentVerb.TRIGGERED_AGAIN, actor, reason=description, data=data
        )
        if "severity" in data:
            gate_inputs.changed(services=[locked.service_id])
    return locked


def _key_recorded(incident: Incident, key: str) -> bool:
    """Has this occurrence already been written to the incident's timeline?

    The last key alone is not enough once several criteria share an incident: their repeats
    interleave, and each tick would otherwise add the one seen before the last again.
    """
    if incident.last_trigger_key == key:
        return True
    return incident.events.filter(
        verb__in=[IncidentVerb.OPENED, IncidentVerb.TRIGGERED_AGAIN], data__key=key
    ).exists()


def breach_fingerprint(release: Release) -> str:
    """What the breaches of one release share: one unresolved incident per release."""
    return f"breach:release-{release.pk}"


def open_or_update_for_breach(
    release: Release,
    *,
    criterion_id: int,
    criterion_label: str,
    detail: str,
    episode: int | str = "",
    severity: str = "",
    metric: str = "",
) -> tuple[Incident, bool]:
    """A critical metric breach: one unresolved incident per release, whichever criteria breach.

    A bad release usually trips several criteria at once (errors and latency), and each must not
    open an incident and page the on-call again: that is one problem. The first breach opens the
    incident (the criterion's `severity`, else INCIDENTS_BREACH_SEVERITY; titled after its
    criterion; routed by its labels: metric, criterion, environment, plan); another criterion,
    or the same one in a later episode, adds "triggered again" naming it; the same criterion's
    episode seen twice adds nothing. Once the incident is resolved, the next breach opens a new
    one (a fixed release is a new release, with a fingerprint of its own).
    """
    service = release.service
    key = f"criterion-{criterion_id}:episode:{episode}" if episode != "" else ""
    stage = release.current_stage
    # What routing rules match a breach on, as an alert's labels (all strings).
    labels = {
        "metric": metric,
        "criterion": str(criterion_id),
        # Where the breaching stage runs: a plan may go from staging to production.
        "environment": (stage.environment if stage else release.environment).slug,
        "plan": release.plan.slug if release.plan_id else "",
    }
    return trigger(
        service=service,
        fingerprint=breach_fingerprint(release),
        title=f"{service.name} {release.version}: critical breach of {criterion_label}",
        actor=Actor.system(BREACH_ACTOR),
        severity=severity or settings.INCIDENTS_BREACH_SEVERITY,
        source=IncidentSource.BREACH,
        description=detail,
        release=release,
        labels={"labels": labels},
        key=key,
        event_data={"criterion": {"id": criterion_id, "label": criterion_label}},
    )


def resolve_by_fingerprint(
    service: Service, fingerprint: str, *, actor: Actor, reason: str
) -> Incident | None:
    """Resolve the unresolved incident with this fingerprint, if there is one."""
    incident = (
        Incident.objects.unresolved().filter(service=service, fingerprint=fingerprint).first()
    )
    if incident is None:
        return None
    try:
        return resolve(incident, actor=actor, reason=reason)
    except IncidentForbidden:
        raise
    except IncidentError:
        return None  # resolved by someone else meanwhile
