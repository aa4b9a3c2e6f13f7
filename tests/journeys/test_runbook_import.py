"""A runbook imported through the API, then a release on the plan it made, end to end.

The payments runbook (tests/fixtures/runbooks/payments-tables-runbook.md) keeps everything in
tables: stages Smoke (staging, 0 %, 2 h) → Canary (2 %, 6 h) → 25 % → 100 %, rollback criteria
(payment error rate > 1 % rolls back, latency p99 > 1500 ms pauses) and the escalation levels
payments on-call → team lead after 20 min → head of engineering after 45 min. Nothing is
configured by hand except the people: CI imports the runbook for its service, registers 1.0.0 on
the imported plan, the imported pre-flight checklist holds the gate until Rita ticks it, the soak
holds the next step, the error rate breaks at 2 %, the tick rolls the release back by the
imported criterion, and the incident pages the imported levels in turn.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from apps.incidents.models import Contact, Incident
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Environment, Release, Service
from apps.releases.roles import RELEASE_MANAGERS, VIEWERS, ensure_roles

from .conftest import begin, cast_member
from .harness import duplicates

pytestmark = [pytest.mark.django_db(transaction=True)]

RUNBOOK = Path(__file__).parents[1] / "fixtures/runbooks/payments-tables-runbook.md"
HEALTHY = {"payment_error_rate": 0.2, "authorization_latency_p99": 0.3}
BROKEN = {"payment_error_rate": 3.0, "authorization_latency_p99": 0.3}


@pytest.fixture
def people_of_payments(transactional_db, clock) -> dict:
    """Only whom this runbook names, on an empty install (no demo data): the import configures
    everything else."""
    ensure_roles()  # a transactional test before this one flushed the migration's groups
    Environment.objects.create(name="Staging", slug="staging", is_production=False, order=1)
    Environment.objects.create(name="Production", slug="production", is_production=True, order=2)
    return {
        "rita": cast_member("rita", RELEASE_MANAGERS, is_staff=True),
        "omar": cast_member("omar", VIEWERS),
        "sam": cast_member("sam", VIEWERS),
    }


def test_an_imported_runbook_runs_a_release(people_of_payments, clock) -> None:
    cast = people_of_payments
    service = Service.objects.create(name="Payments API", slug="payments-api")
    # The people the escalation table names, as contacts (the runbook names roles, not emails).
    Contact.objects.create(name="Omar", role="Payments on-call", email=cast["omar"].email)
    Contact.objects.create(name="Sam", role="Payments team lead", email=cast["sam"].email)
    world, ci, people = begin(service, clock, cast)
    rita, omar, sam = people["rita"], people["omar"], people["sam"]

    saved = ci.call(
        "post",
        "/runbooks/import",
        {"runbook": RUNBOOK.read_text(), "source": RUNBOOK.name, "service": service.slug},
        expect=201,
    )
    assert saved["unfilled"] == ["L3 Head of engineering"]
    service.refresh_from_db()
    assert service.default_plan.slug == saved["plan"]["slug"]

    # --- the imported plan, gate and checklist -------------------------------------------
    body = ci.register(service=service.slug, environment="production", version="1.0.0")
    release = Release.objects.get(pk=body["id"])
    assert release.plan_id == saved["plan"]["id"]
    assert [(s.name, s.traffic_percentage, s.environment.slug) for s in release.stages.all()] == [
        ("Smoke", 0, "staging"),
        ("Canary", 2, "production"),
        ("Early majority", 25, "production"),
        ("Everyone", 100, "production"),
    ]
    gate = ci.gate(release.pk)
    assert not gate["can_advance"] and {b["kind"] for b in gate["blockers"]} == {"checklist"}
    [pre_flight] = release.checklists.filter(kind="pre_deployment")
    assert pre_flight.items.count() == 4
    for item in pre_flight.items.all():
        rita.post(f"/releases/{release.pk}/checklist-items/{item.pk}/", {"done": "1"})
    assert ci.gate(release.pk)["can_advance"] is True
    ci.call("post", f"/releases/{release.pk}/start/", {"reason": "pipeline 1"})
    assert ci.traffic(release.pk) == 0  # Smoke, in staging
    world.watch(release.pk, **HEALTHY)
    world.minutes(3)
    assert {b["kind"] for b in ci.gate(release.pk)["blockers"]} == {"soak"}  # 2 hours
    world.wait(timedelta(hours=2, minutes=5))
    assert ci.gate(release.pk)["can_advance"] is True
    ci.call("post", f"/releases/{release.pk}/advance/", {"reason": "smoke soaked"})
    assert ci.traffic(release.pk) == 2

    # --- the imported criteria evaluating: healthy, then the rollback trigger --------------
    world.minutes(5)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.IN_PROGRESS
    latest = ci.call("get", f"/releases/{release.pk}/checks/latest/")
    assert "payment_error_rate" in str(latest)
    world.watch(release.pk, **BROKEN)
    world.until(
        lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.ROLLED_BACK,
        limit=timedelta(minutes=15),
        what="the imported rollback trigger rolls 1.0.0 back",
    )
    assert ci.traffic(release.pk) == 0
    world.unwatch(release.pk)

    # --- the imported escalation paging ----------------------------------------------------
    [incident] = Incident.objects.filter(service=service)
    assert incident.severity == "sev1"  # a rollback trigger's incident
    assert incident.policy_id == saved["escalation_policy"]["id"]
    world.minutes(2)
    assert omar.inbox(f"#{incident.pk}"), "L1, the payments on-call, is paged at once"
    assert not sam.inbox(f"#{incident.pk}")
    world.minutes(20)
    assert sam.inbox(f"#{incident.pk}"), "unacknowledged after 20 minutes: the team lead"
    assert not duplicates(omar.inbox(f"#{incident.pk}") + sam.inbox(f"#{incident.pk}"))
