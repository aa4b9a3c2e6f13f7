"""Critical breaches open incidents; SEV1/SEV2 incidents hold the service's other releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from apps.checks.choices import CriticalAction
from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import IncidentSource, IncidentVerb, Severity
from apps.incidents.models import Incident
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import gate, transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion, push
from tests.factories import EnvironmentFactory, PlanFactory, make_release

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)
MIN = timedelta(minutes=1)
SYSTEM = Actor.system("tests")


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def plan():
    return PlanFactory(
        slug="watched",
        stages=[("canary", 5, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )


@pytest.fixture
def running(clock, service, production, plan):
    release = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    transitions.start(release, actor=SYSTEM)
    return release


def breach_incidents() -> list[Incident]:
    return list(Incident.objects.filter(source=IncidentSource.BREACH))


def test_a_critical_breach_opens_an_incident_linked_to_its_release(
    running, plan, error_rate, routing, run
):
    criterion(plan, error_rate, on_critical=CriticalAction.ROLLBACK)
    push(running, error_rate, [0.09], end=NOW)

    run(run_checks)

    running.refresh_from_db()
    assert running.status == ReleaseStatus.ROLLED_BACK
    [incident] = breach_incidents()
    assert (incident.service, incident.release, incident.severity) == (
        running.service,
        running,
        Severity.SEV2,
    )
    assert incident.title == "AI Orchestra 2.4.0: critical breach of error_rate > 5 %"
    assert incident.fingerprint == f"breach:release-{running.pk}"
    opened = incident.events.get(verb=IncidentVerb.OPENED)
    assert opened.actor_name == "system:metric-checks"
    assert "measured 9 %" in opened.reason
    # The service's escalation policy pages its first level at once.
    assert [m.to for m in mail.outbox if "[SEV2]" in m.subject] == [["ada@example.com"]]


def test_a_repeat_breach_adds_to_the_open_incident_instead_of_opening_another(
    clock, running, plan, error_rate, run
):
    criterion(plan, error_rate, on_critical=CriticalAction.NOTIFY)  # the release keeps running
    minutes = [0.09, 0.09, 0.01, 0.09]  # breach, same breach, recovered, breached again
    for offset, value in enumerate(minutes):
        now = NOW + offset * MIN
        clock.move_to(now)
        push(running, error_rate, [value], end=now)
        run(run_checks)
        if offset == 1:
            # The same breach episode seen by the next tick adds nothing.
            assert breach_incidents()[0].events.count() == 1

    [incident] = breach_incidents()
    verbs = list(incident.events.order_by("id").values_list("verb", flat=True))
    assert verbs == [IncidentVerb.OPENED, IncidentVerb.TRIGGERED_AGAIN]
    assert incident.trigger_count == 2
    again = incident.events.get(verb=IncidentVerb.TRIGGERED_AGAIN)
    assert again.created_at == NOW + 3 * MIN
    assert "Metric check failed" in again.reason

    # Once resolved, the next breach opens a new incident.
    lifecycle.resolve(incident, actor=SYSTEM)
    clock.move_to(NOW + 4 * MIN)
    push(running, error_rate, [0.09], end=NOW + 4 * MIN)
    run(run_checks)
    assert len(breach_incidents()) == 2


@pytest.fixture
def releases(clock, service, other_service, production, plan):
    """A planned and a running release of the service, and a running one of another service.

    The planned one goes to staging: in production it would also wait for 2.9 to finish.
    """
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    planned = make_release(service=service, environment=staging, plan=plan, version="3.0")
    running = make_release(service=service, environment=production, plan=plan, version="2.9")
    elsewhere = make_release(service=other_service, environment=production, plan=plan)
    for release in (running, elsewhere):
        transitions.start(release, actor=SYSTEM)
    return planned, running, elsewhere


def incident_blockers(release) -> list[str]:
    return [b.detail for b in gate.evaluate(release).blockers if b.kind == "incident"]


def test_an_open_sev1_or_sev2_holds_start_and_advance_of_the_services_releases(
    releases, service, rita_actor
):
    planned, running, elsewhere = releases
    incident = lifecycle.open_incident(
        service=service, title="Checkout down", severity=Severity.SEV2, actor=SYSTEM
    )

    [detail] = incident_blockers(planned)
    assert detail.startswith(f"Incident #{incident.pk} (SEV2, open) on AI Orchestra: Checkout down")
    assert incident_blockers(running) == [detail]
    assert incident_blockers(elsewhere) == []
    with pytest.raises(transitions.TransitionError) as refused:
        transitions.start(planned, actor=rita_actor)
    assert [b.kind for b in refused.value.blockers] == ["incident"]
    with pytest.raises(transitions.TransitionError):
        transitions.advance(running, actor=rita_actor)
    transitions.advance(elsewhere, actor=rita_actor)

    # Acknowledged or mitigated still holds; pause and rollback are never held.
    lifecycle.mitigate(incident, actor=rita_actor)
    assert "mitigated" in incident_blockers(running)[0]
    transitions.pause(running, actor=rita_actor)
    transitions.resume(running, actor=rita_actor)

    # A release manager may override, and the override records the incident it passed.
    [held] = incident_blockers(planned)
    transitions.start(planned, actor=rita_actor, force=True, reason="Hotfix for the incident")
    override = planned.events.get(verb=EventVerb.GATE_OVERRIDDEN)
    assert override.data["blockers"] == [{"kind": "incident", "detail": held}]

    lifecycle.resolve(incident, actor=rita_actor)
    assert incident_blockers(running) == []
    transitions.advance(running, actor=rita_actor)


def test_lesser_incidents_and_the_incidents_own_release_are_not_held(releases, service, rita_actor):
    planned, running, _ = releases
    lifecycle.open_incident(
        service=service, title="Slow dashboard", severity=Severity.SEV3, actor=SYSTEM
    )
    assert incident_blockers(planned) == []
    lifecycle.open_incident(
        service=service,
        title="Canary errors",
        severity=Severity.SEV1,
        release=running,
        actor=SYSTEM,
    )
    assert incident_blockers(running) == []  # its own incident: paused or rolled back already
    assert len(incident_blockers(planned)) == 1
    transitions.rollback(running, actor=rita_actor, reason="Canary errors")
