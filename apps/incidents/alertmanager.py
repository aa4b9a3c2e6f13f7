"""Alertmanager's webhook (payload version 4): firing alerts open or update incidents, resolved
ones resolve them.

An alert is matched to an incident by its fingerprint (Alertmanager's, or a hash of its labels);
which label names the service is configurable. A payload is taken whole or not at all: a
malformed one or one naming a service rolloutdesk does not know changes nothing.

Alertmanager retries a notification answered 5xx and drops one answered 4xx, so losing a race
with another post for the same alert must never be a 4xx: the payload is applied again (a few
times, in a fresh transaction each), and only then answered 503 with Retry-After (`Busy`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, transaction
from django.db.models import Q

from apps.core.actors import Actor
from apps.releases.models import Service

from . import lifecycle
from .choices import IncidentSource, Severity
from .models.oncall import validate_http_url

logger = logging.getLogger(__name__)

FINGERPRINT_PREFIX = "alertmanager:"
# Whole-payload attempts before answering 503; each of them already retries inside
# lifecycle.trigger, so five make a lost race vanishingly rare (measured: no 503 in 3 x 60
# racing posts).
MAX_ATTEMPTS = 5
# Seconds Alertmanager is told to wait after a 503 (it also backs off by itself).
RETRY_AFTER = 2
# SQLSTATEs of losing a race in PostgreSQL: serialization failure, deadlock, lock not available.
CONTENTION_SQLSTATES = frozenset({"40001", "40P01", "55P03"})

# The `severity` label's usual values, mapped to ours; anything else is SEV3.
SEVERITY_LABELS: dict[str, str] = {
    **dict.fromkeys(["critical", "page", "sev1", "p1", "disaster", "emergency"], Severity.SEV1),
    **dict.fromkeys(["high", "error", "major", "sev2", "p2"], Severity.SEV2),
    **dict.fromkeys(["warning", "warn", "minor", "medium", "sev3", "p3"], Severity.SEV3),
    **dict.fromkeys(["info", "low", "none", "sev4", "p4", "p5"], Severity.SEV4),
}
DEFAULT_SEVERITY = Severity.SEV3


class PayloadError(ValueError):
    """The body is not an Alertmanager v4 payload (HTTP 400); `errors` names each problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class UnknownService(ValueError):
    """An alert names no service, or one rolloutdesk does not know (HTTP 422)."""

    def __init__(self, label: str, problems: list[dict[str, Any]]) -> None:
        super().__init__(f"Alerts name no known service in label {label!r}.")
        self.label = label
        self.problems = problems


class Busy(Exception):
    """Other posts for the same alerts kept winning the race (HTTP 503 with Retry-After)."""

    def __init__(self, attempts: int) -> None:
        super().__init__(
            f"Other notifications for these alerts are being applied; gave up after {attempts} "
            f"attempts. Retry in {RETRY_AFTER} seconds."
        )
        self.retry_after = RETRY_AFTER


@dataclass
class Alert:
    """One alert of the payload, checked."""

    index: int
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    starts_at: str
    link: str
    service: Service | None = None

    @property
    def severity(self) -> str:
        return SEVERITY_LABELS.get(self.labels.get("severity", "").lower(), DEFAULT_SEVERITY)

    @property
    def title(self) -> str:
        summary = self.annotations.get("summary") or self.annotations.get("title")
        if summary:
            return summary
        name = self.labels.get("alertname", "Alert")
        instance = self.labels.get("instance")
        return f"{name} on {instance}" if instance else name


@dataclass
class Receipt:
    """What one payload did."""

    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    ignored: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "updated": self.updated,
            "resolved": self.resolved,
            "ignored": self.ignored,
        }


def _strings(value: Any, where: str, errors: list[str], *, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        errors.append(f"{where} must be an object of string values.")
        return {}
    return value


def parse(payload: Any) -> list[Alert]:
    """Check the payload's shape; raise PayloadError naming every problem."""
    if not isinstance(payload, dict):
        raise PayloadError(["The body must be a JSON object (an Alertmanager webhook, version 4)."])
    errors: list[str] = []
    if str(payload.get("version")) != "4":
        errors.append(f'version must be "4", not {payload.get("version")!r}.')
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list):
        errors.append("alerts must be a list.")
        raise PayloadError(errors)
    alerts = []
    for index, raw in enumerate(raw_alerts):
        where = f"alerts[{index}]"
        if not isinstance(raw, dict):
            errors.append(f"{where} must be an object.")
            continue
        status = raw.get("status")
        if status not in ("firing", "resolved"):
            errors.append(f'{where}.status must be "firing" or "resolved", not {status!r}.')
        labels = _strings(raw.get("labels"), f"{where}.labels", errors, required=True)
        annotations = _strings(
            raw.get("annotations"), f"{where}.annotations", errors, required=False
        )
        fingerprint = raw.get("fingerprint") or ""
        if not isinstance(fingerprint, str):
            errors.append(f"{where}.fingerprint must be a string.")
            fingerprint = ""
        if not fingerprint and labels:
            # Alertmanager's own fingerprint is a hash of the labels too: the same labels, the
            # same incident.
            digest = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()
            fingerprint = digest[:16]
        link = raw.get("generatorURL") or ""
        if not isinstance(link, str):
            errors.append(f"{where}.generatorURL must be a string (a URL).")
            link = ""
        try:
            validate_http_url(link)
        except ValidationError:
            link = ""  # a courtesy link: a strange one is dropped, not refused
        alerts.append(
            Alert(
                index=index,
                status=status,
                labels=labels,
                annotations=annotations,
                fingerprint=fingerprint[:150],
                starts_at=str(raw.get("startsAt") or ""),
                link=link if len(link) <= 500 else "",
            )
        )
    if errors:
        raise PayloadError(errors)
    return alerts


def _attach_services(alerts: list[Alert], label: str) -> None:
    """Find each alert's service by the label (a slug or a name); raise UnknownService."""
    values = {a.labels.get(label, "") for a in alerts} - {""}
    lookup = Q(slug__in=values) | Q(name__in=values)
    services = list(Service.objects.filter(lookup)) if values else []
    by_value = {s.slug: s for s in services} | {s.name: s for s in services}
    by_lower = {k.lower(): s for k, s in by_value.items()}
    problems = []
    for alert in alerts:
        value = alert.labels.get(label, "")
        alert.service = by_value.get(value) or by_lower.get(value.lower())
        if alert.service is not None:
            continue
        reason = (
            f"The alert has no {label!r} label."
            if not value
            else f"{label}={value!r} is not a service rolloutdesk knows (use its slug or name)."
        )
        problems.append({"index": alert.index, "fingerprint": alert.fingerprint, "reason": reason})
    if problems:
        raise UnknownService(label, problems)


def receive(payload: Any, *, actor: Actor, service_label: str | None = None) -> Receipt:
    """Apply an Alertmanager payload: all of it, or (on any error) none of it."""
    label = service_label or settings.INCIDENTS_ALERTMANAGER_SERVICE_LABEL
    alerts = parse(payload)
    _attach_services(alerts, label)
    for alert in alerts:
        if not actor.may_touch_service(alert.service.pk):
            raise lifecycle.IncidentForbidden(
                f"This token may not act on service {alert.service.slug!r} (alerts[{alert.index}])."
            )
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _apply(alerts, actor)
        except lifecycle.IncidentForbidden:
            raise
        except lifecycle.IncidentError as exc:
            # From trigger() only: the incident was resolved or opened by another post each time
            # it looked (resolve_by_fingerprint takes a lost race as "nothing to resolve").
            cause: Exception = exc
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) not in CONTENTION_SQLSTATES:
                raise  # the database is down: DatabaseUnavailableMiddleware answers 503
            cause = exc
        logger.info("Alertmanager payload lost a race (attempt %d): %s", attempt, cause)
        # Jittered, growing pauses, so that the posts racing for one alert fall out of step.
        time.sleep(random.uniform(0, 0.02 * attempt))
    raise Busy(MAX_ATTEMPTS)


def _apply(alerts: list[Alert], actor: Actor) -> Receipt:
    """One attempt at the whole payload, in one transaction."""
    receipt = Receipt()
    with transaction.atomic():
        for alert in alerts:
            fingerprint = FINGERPRINT_PREFIX + alert.fingerprint
            if alert.status == "resolved":
                incident = lifecycle.resolve_by_fingerprint(
                    alert.service,
                    fingerprint,
                    actor=actor,
                    reason=f"Alertmanager: {alert.title} resolved.",
                )
                if incident is None:
                    receipt.ignored += 1
                else:
                    receipt.resolved.append(incident.pk)
                continue
            incident, opened = lifecycle.trigger(
                service=alert.service,
                fingerprint=fingerprint,
                title=alert.title,
                actor=actor,
                severity=alert.severity,
                source=IncidentSource.ALERTMANAGER,
                description=alert.annotations.get("description", ""),
                labels={"labels": alert.labels, "annotations": alert.annotations},
                link=alert.link,
            )
            (receipt.opened if opened else receipt.updated).append(incident.pk)
    return receipt
