"""Scale-out: two Celery worker processes and one beat, on Redis and PostgreSQL, through several
ticks of metric checks, escalations and reports; every action and every notification happens
exactly once.

Beat runs the production schedule at a few seconds per tick (tests/faults/fast_settings.py). To
make the two workers race for the same work, the test also sends each scheduled task twice at
the start, as a second beat would.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from apps.checks.models import CheckNotification, CheckRun
from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import DeliveryStatus, IncidentVerb
from apps.incidents.models import (
    Contact,
    EscalationLevel,
    IncidentEvent,
    IncidentRouting,
    NotificationDelivery,
)
from apps.incidents.tasks import escalate
from apps.outbox.tasks import sweep
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Event, Release
from apps.reports.choices import DeliveryStatus as ReportStatus
from apps.reports.models import ReportDelivery, ReportSubscription
from apps.reports.tasks import send_due_reports
from apps.rollouts import transitions
from apps.rollouts.tasks import tick
from tests.checks.conftest import criterion, push
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release
from tests.faults.conftest import page_on_call
from tests.faults.services import wait_for

pytestmark = [pytest.mark.services, pytest.mark.real_worker]

EACH = 3  # releases per kind: breaching (roll back), warning (notify), healthy
SUBSCRIBERS = ["em@example.com", "pm@example.com", "qa@example.com"]


def subject(message) -> str:
    return " ".join(str(message["Subject"]).split())


def test_two_workers_and_one_beat_do_everything_exactly_once(
    celery, postgres, error_rate, production
) -> None:
    system = Actor.system("tests")
    service = ServiceFactory(
        name="AI Orchestra", slug="ai-orchestra", notification_emails="oncall@example.com"
    )
    page_on_call(service)
    # A second level a minute in: incidents opened just under a minute ago reach it mid-run.
    sam = Contact.objects.create(name="Sam", email="sam@example.com")
    level = EscalationLevel.objects.create(
        policy=IncidentRouting.objects.get(service=service).policy, position=2, after_minutes=1
    )
    level.contacts.set([sam])
    plan = PlanFactory(slug="watched", stages=[("canary", 10, timedelta(hours=24), False)])
    criterion(
        plan,
        error_rate,
        warning_threshold=0.02,
        critical_threshold=0.05,
        on_critical="rollback",
        on_warning="notify",
    )
    now = timezone.now()
    kinds = {"breaching": 0.09, "warning": 0.03, "healthy": 0.001}
    releases: dict[str, list[Release]] = {kind: [] for kind in kinds}
    for kind, value in kinds.items():
        for n in range(EACH):
            # Each in a region of its own: one release of a service runs in an environment
            # at a time.
            region = EnvironmentFactory(name=f"Region {kind}-{n}", slug=f"region-{kind}-{n}")
            release = make_release(
                service=service, environment=region, plan=plan, version=f"{kind}-{n}"
            )
            transitions.start(release, actor=system)
            push(release, error_rate, [value] * 3, end=now, count=400)
            releases[kind].append(release)
    manual = []
    # L1 is paged as each opens (queued to no one yet). L2 (a minute in) is due at once for
    # two of them, which the two workers' first escalation ticks race for, and falls due mid-run
    # for the third.
    for n, age in enumerate((65, 65, 50)):
        incident = lifecycle.open_incident(
            service=service, title=f"Queue backlog {n}", severity="sev3", actor=system
        )
        type(incident).objects.filter(pk=incident.pk).update(
            opened_at=now - timedelta(seconds=age),
            escalation_started_at=now - timedelta(seconds=age),
        )
        manual.append(incident)
    for address in SUBSCRIBERS:
        made = ReportSubscription.objects.create(email=address, frequency="daily")
        ReportSubscription.objects.filter(pk=made.pk).update(next_due_at=now - timedelta(minutes=1))

    workers = [celery.worker(), celery.worker()]
    celery.beat()
    # A second beat's worth of every scheduled task, at once: the two idle workers each take one
    # of a pair and race for the same work.
    for task in (escalate, tick, send_due_reports, sweep):
        task.delay()
        task.delay()

    def settled() -> bool:
        rolled_back = Release.objects.filter(status=ReleaseStatus.ROLLED_BACK).count()
        unsent = NotificationDelivery.objects.exclude(status=DeliveryStatus.SENT).count()
        level2 = IncidentEvent.objects.filter(
            verb=IncidentVerb.ESCALATED, data__level=2, incident__in=manual
        ).count()
        warned = CheckNotification.objects.filter(sent_at__isnull=False).count()
        reported = ReportDelivery.objects.filter(status=ReportStatus.SENT).count()
        return (
            rolled_back == EACH
            and unsent == 0
            and level2 == len(manual)
            and warned == EACH
            and reported == len(SUBSCRIBERS)
        )

    wait_for(settled, timeout=120, what="the checks, escalations and reports to be done",
             log=celery.logs())  # fmt: skip
    # Several ticks ran, on both workers; the ones after the work was done (two at least) must
    # find nothing left to do. Waited for, not slept: on a busy machine a tick takes longer.
    done_at = CheckRun.objects.values("slot").distinct().count()
    wait_for(lambda: CheckRun.objects.values("slot").distinct().count() >= max(3, done_at + 2),
             timeout=60, what="two more ticks of checks", log=celery.logs())  # fmt: skip
    for worker in workers:
        assert re.search(rb"succeeded in", worker.log.read_bytes()), "a worker did no work"
    # Actions, once each.
    assert set(Release.objects.filter(status=ReleaseStatus.ROLLED_BACK)) == set(
        releases["breaching"]
    )
    rollbacks = Event.objects.filter(verb=EventVerb.ROLLED_BACK).values("release_id")
    assert {row["n"] for row in rollbacks.annotate(n=Count("id"))} == {1}
    assert CheckRun.objects.values("release_id", "slot").annotate(n=Count("id")).filter(
        n__gt=1
    ).count() == 0  # fmt: skip
    escalations = IncidentEvent.objects.filter(verb=IncidentVerb.ESCALATED)
    per_level = Counter((e.incident_id, e.data["level"]) for e in escalations)
    assert set(per_level.values()) == {1}
    assert {(i.pk, 2) for i in manual} <= set(per_level)
    assert NotificationDelivery.objects.filter(attempts__gt=1).count() == 0
    assert ReportDelivery.objects.count() == len(SUBSCRIBERS)

    # Notifications, once each, across both workers' outboxes.
    sent = [(m["To"], subject(m)) for m in celery.emails()]
    duplicates = [item for item, n in Counter(sent).items() if n > 1]
    assert not duplicates, duplicates
    to_list = [s for to, s in sent if to == "oncall@example.com"]
    assert len([s for s in to_list if "rolled back" in s]) == EACH
    assert len([s for s in to_list if "metric check warn" in s.lower()]) == EACH, to_list
    pages = [s for to, s in sent if to == "ada@example.com"]
    assert len(pages) == EACH + len(manual)  # L1: a breach incident per rollback, and the three
    assert len([s for to, s in sent if to == "sam@example.com"]) >= len(manual)
    reports = sorted(to for to, s in sent if to in SUBSCRIBERS)
    assert reports == sorted(SUBSCRIBERS)
