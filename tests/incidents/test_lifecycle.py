"""The lifecycle module: allowed changes, stamps, timeline entries, refusals."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import IncidentStatus, IncidentVerb, Severity
from apps.incidents.lifecycle import IncidentError, IncidentForbidden
from tests.factories import make_release

pytestmark = pytest.mark.django_db

T0 = datetime.fromisoformat("2026-03-10 10:00:00+00:00")
SYSTEM = Actor.system("tests")


def test_each_change_stamps_its_time_and_writes_one_timeline_entry(service, rita_actor):
    with time_machine.travel(T0, tick=False) as clock:
        incident = lifecycle.open_incident(service=service, title="Down", actor=SYSTEM)
        steps = [
            (lifecycle.acknowledge, IncidentStatus.ACKNOWLEDGED, "acknowledged_at"),
            (lifecycle.mitigate, IncidentStatus.MITIGATED, "mitigated_at"),
            (lifecycle.resolve, IncidentStatus.RESOLVED, "resolved_at"),
            (lifecycle.reopen, IncidentStatus.OPEN, "opened_at"),
        ]
        for minutes, (change, status, stamp) in enumerate(steps, start=1):
            clock.move_to(T0 + timedelta(minutes=minutes))
            change(incident, actor=rita_actor, reason=f"step {minutes}")
            assert incident.status == status
            last = incident.events.order_by("-id").first()
            assert (last.verb, last.actor_name, last.reason) == (
                status if status != IncidentStatus.OPEN else IncidentVerb.REOPENED,
                "rita",
                f"step {minutes}",
            )
            if stamp != "opened_at":
                assert getattr(incident, stamp) == T0 + timedelta(minutes=minutes)
    # Reopening clears the stamps of the last round; the first opening stays.
    assert (incident.opened_at, incident.acknowledged_at, incident.resolved_at) == (T0, None, None)
    assert incident.events.count() == 5


def test_mitigating_an_open_incident_counts_as_acknowledging_it(service, rita_actor):
    with time_machine.travel(T0, tick=False) as clock:
        incident = lifecycle.open_incident(service=service, title="Down", actor=SYSTEM)
        clock.move_to(T0 + timedelta(minutes=4))
        lifecycle.mitigate(incident, actor=rita_actor)
    assert incident.time_to_acknowledge == timedelta(minutes=4)


@pytest.mark.parametrize(
    ("before", "change", "message"),
    [
        (
            "acknowledge",
            lifecycle.acknowledge,
            "Cannot acknowledge incident #{}: it is acknowledged",
        ),
        ("resolve", lifecycle.mitigate, "Cannot mitigate incident #{}: it is resolved"),
        ("resolve", lifecycle.resolve, "Cannot resolve incident #{}: it is resolved"),
        (None, lifecycle.reopen, "Cannot reopen incident #{}: it is open."),
    ],
)
def test_a_change_the_status_does_not_allow_is_refused_naming_who_did_what(
    service, rita_actor, before, change, message
):
    incident = lifecycle.open_incident(service=service, title="Down", actor=SYSTEM)
    if before:
        getattr(lifecycle, before)(incident, actor=rita_actor)
    events = incident.events.count()
    with pytest.raises(IncidentError) as refused:
        change(incident, actor=rita_actor)
    assert refused.value.message.startswith(message.format(incident.pk))
    if before:
        assert "(by rita at " in refused.value.message
    assert incident.events.count() == events


def test_a_token_acts_only_on_its_services_incidents(service, other_service):
    incident = lifecycle.open_incident(service=service, title="Down", actor=SYSTEM)
    billing_token = Actor.for_token(9, "billing", frozenset({other_service.pk}))
    with pytest.raises(IncidentForbidden):
        lifecycle.acknowledge(incident, actor=billing_token)
    with pytest.raises(IncidentForbidden):
        lifecycle.open_incident(service=service, title="x", actor=billing_token)
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.OPEN


def test_reopening_is_refused_while_a_newer_incident_holds_the_same_alert(service, rita_actor):
    first, _ = lifecycle.trigger(
        service=service,
        fingerprint="alertmanager:abc",
        title="Down",
        actor=SYSTEM,
        severity=Severity.SEV2,
        source="alertmanager",
    )
    lifecycle.resolve(first, actor=rita_actor)
    second, opened = lifecycle.trigger(
        service=service,
        fingerprint="alertmanager:abc",
        title="Down again",
        actor=SYSTEM,
        severity=Severity.SEV2,
        source="alertmanager",
    )
    assert opened and second.pk != first.pk
    with pytest.raises(IncidentError) as refused:
        lifecycle.reopen(first, actor=rita_actor)
    assert f"incident #{second.pk} is open for the same alert" in refused.value.message
    first.refresh_from_db()
    assert first.status == IncidentStatus.RESOLVED


def test_bad_input_is_named_and_nothing_is_written(service, other_service, rita_actor):
    with pytest.raises(ValidationError) as blank:
        lifecycle.open_incident(service=service, title="  ", actor=rita_actor)
    assert "title" in blank.value.message_dict
    with pytest.raises(ValidationError) as unknown:
        lifecycle.open_incident(service=service, title="x", severity="sev9", actor=rita_actor)
    assert "severity" in unknown.value.message_dict
    elsewhere = make_release(service=other_service)
    with pytest.raises(ValidationError) as mismatch:
        lifecycle.open_incident(service=service, title="x", release=elsewhere, actor=rita_actor)
    assert "release" in mismatch.value.message_dict
    assert service.incidents.count() == 0

    incident = lifecycle.open_incident(service=service, title="Down", actor=rita_actor)
    with pytest.raises(ValidationError):
        lifecycle.update(incident, actor=rita_actor, release=elsewhere)
    with pytest.raises(ValidationError):
        lifecycle.update(incident, actor=rita_actor, status="resolved")
    incident.refresh_from_db()
    assert (incident.release, incident.status) == (None, IncidentStatus.OPEN)
    assert not incident.events.filter(verb=IncidentVerb.UPDATED).exists()
