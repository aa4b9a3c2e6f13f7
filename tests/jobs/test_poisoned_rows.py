"""One poisoned row per periodic job: the job does all the other work and records the failure.

Each poison is a row whose data makes the product's own code raise (saved past validation, the
way an old import or a hand-edited row gets in), except two, said at the test: the reminders and
the report sends' deliveries have no data that makes them raise, so one inner function is made to
raise for one id.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail

from apps.checks.choices import CriticalAction
from apps.checks.models import CheckRun, MetricCriterion
from apps.core.actors import Actor
from apps.incidents import escalation, lifecycle
from apps.incidents.choices import Channel, DeliveryStatus, Severity
from apps.incidents.models import (
    EscalationLevel,
    EscalationPolicy,
    IncidentRouting,
    NotificationDelivery,
    OnCallRotation,
)
from apps.jobs.models import JobItemFailure, JobRun, RunOutcome
from apps.outbox import tasks as outbox_tasks
from apps.releases.choices import ReleaseStatus
from apps.reports import services as reports
from apps.reports.choices import DeliveryStatus as ReportDeliveryStatus
from apps.reports.choices import Frequency
from apps.reports.models import ReportChart, ReportDelivery, ReportSubscription
from apps.reports.schedule import last_complete_period
from apps.rollouts import tasks as rollout_tasks
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from apps.rollouts.ticks import auto_advance_due
from apps.signoffs import asking
from apps.signoffs.choices import FreezeRecurrence, Weekday
from apps.signoffs.models import FreezeWindow, SignOffRule
from tests.checks.conftest import criterion, push
from tests.factories import PlanFactory, ServiceFactory, UserFactory, make_release
from tests.incidents.conftest import contact, make_policy, make_rotation

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)
SYSTEM = Actor.system("tests")
NOT_A_ZONE = "Mars/Olympus_Mons"


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def failure(job: str) -> JobItemFailure:
    """The job's one recorded failure (there must be exactly one)."""
    return JobItemFailure.objects.get(job=job)


def plan(slug: str, *, auto: bool = False):
    return PlanFactory(
        slug=slug, stages=[("canary", 5, timedelta(0), auto), ("full", 100, timedelta(0), auto)]
    )


def running_release(plan_obj, production, slug: str):
    """An in-progress release of its own service (one running release per service and place)."""
    service = ServiceFactory(
        name=slug.title(), slug=slug, notification_emails=f"{slug}@example.com"
    )
    release = make_release(service=service, environment=production, plan=plan_obj)
    transitions.start(release, actor=SYSTEM)
    release.refresh_from_db()
    return release


def broken_freeze(service) -> FreezeWindow:
    """A weekly change freeze of `service` whose zone is no zone (saved past its validator).

    Every gate of the service's releases asks whether it is frozen, and cannot be answered.
    """
    window = FreezeWindow.objects.create(
        name="Quarter close",
        recurrence=FreezeRecurrence.WEEKLY,
        weekly_start_day=Weekday.FRIDAY,
        weekly_start_time=time(18, 0),
        weekly_end_day=Weekday.SUNDAY,
        weekly_end_time=time(18, 0),
    )
    window.services.set([service])
    FreezeWindow.objects.filter(pk=window.pk).update(time_zone=NOT_A_ZONE)
    return window


def signer(username: str, group: Group):
    user = UserFactory(username=username)
    user.groups.add(group)
    return user


# --- sign-off sweep ------------------------------------------------------------------------


def test_signoff_sweep_asks_the_other_gates_when_one_release_cannot_be_judged(
    clock, production, run, mailoutbox
):
    approvers = Group.objects.create(name="Gatekeepers")
    signer("gail", approvers)
    # Poison: a planned release waiting on its start sign-off whose service has a change freeze
    # in a zone that is no zone, so its gate cannot be evaluated.
    poisoned_plan = plan("poisoned")
    SignOffRule.objects.create(plan=poisoned_plan).groups.add(approvers)
    poisoned = make_release(
        service=ServiceFactory(slug="poisoned"), environment=production, plan=poisoned_plan
    )
    broken_freeze(poisoned.service)
    # Healthy: a planned release whose start waits only for a sign-off.
    healthy_plan = plan("healthy")
    SignOffRule.objects.create(plan=healthy_plan).groups.add(approvers)
    healthy = make_release(
        service=ServiceFactory(slug="healthy"), environment=production, plan=healthy_plan
    )
    assert poisoned.pk < healthy.pk  # the bad one comes first in the loop

    result = run(rollout_tasks.signoffs_sweep)

    assert result["gates_asked"] == 1
    assert [m.to for m in mailoutbox] == [["gail@example.com"]]
    assert f"/releases/{healthy.pk}/signoff/" in mailoutbox[0].body
    recorded = failure("signoffs.request")
    assert (recorded.item_type, recorded.item_id) == ("releases.release", str(poisoned.pk))
    assert "ZoneInfoNotFoundError" in recorded.error_class
    assert NOT_A_ZONE in recorded.message
    assert "check_freeze" in recorded.traceback
    assert JobRun.objects.get(job="signoffs.request").outcome == RunOutcome.ITEMS_FAILED

    run(rollout_tasks.signoffs_sweep)  # a minute later it fails again: the same row, counted
    recorded.refresh_from_db()
    assert recorded.count == 2
    assert JobItemFailure.objects.count() == 1


def test_reminders_go_out_when_one_release_cannot_be_read(
    settings, production, run, mailoutbox, monkeypatch
):
    """No data makes the reminders raise: gate_status is made to raise for one release."""
    settings.SIGNOFF_REMINDER_HOURS = 4
    approvers = Group.objects.create(name="Gatekeepers")
    others = Group.objects.create(name="Others")
    signer("gail", approvers)
    signer("hugo", others)
    releases = []
    with time_machine.travel(NOW, tick=False) as clock:
        for slug, group in (("first", approvers), ("second", others)):
            gated = plan(slug)
            SignOffRule.objects.create(plan=gated).groups.add(group)
            releases.append(
                make_release(service=ServiceFactory(slug=slug), environment=production, plan=gated)
            )
        run(rollout_tasks.signoffs_sweep)
        assert len(mailoutbox) == 2
        mailoutbox.clear()
        poisoned, healthy = releases
        real = asking.gate_status

        def gate_status(release, **kwargs):
            if release.pk == poisoned.pk:
                raise RuntimeError("the rule's groups cannot be read")
            return real(release, **kwargs)

        monkeypatch.setattr(asking, "gate_status", gate_status)
        clock.shift(timedelta(hours=4))
        result = run(rollout_tasks.signoffs_sweep)

    assert result["people_reminded"] == 1
    assert [m.to for m in mailoutbox] == [["hugo@example.com"]]
    recorded = failure("signoffs.remind")
    assert (recorded.item_type, recorded.item_id) == ("releases.release", str(poisoned.pk))
    assert "the rule's groups cannot be read" in recorded.message


# --- the checks tick and auto-advance -------------------------------------------------------


def test_checks_tick_acts_on_the_other_releases_when_one_criterion_is_broken(
    clock, production, error_rate
):
    # Poison: a criterion with a zero interval (validation wants whole minutes, at least one).
    poisoned_plan = plan("poisoned")
    poisoned = running_release(poisoned_plan, production, "poisoned")
    MetricCriterion.objects.create(
        plan=poisoned_plan,
        metric=error_rate,
        comparator=">",
        critical_threshold=0.05,
        interval=timedelta(0),
        for_window=timedelta(minutes=5),
    )
    push(poisoned, error_rate, [0.01] * 5, end=NOW)
    healthy_plan = plan("healthy")
    healthy = running_release(healthy_plan, production, "healthy")
    criterion(
        healthy_plan,
        error_rate,
        critical_threshold=0.05,
        for_window=timedelta(minutes=5),
        on_critical=CriticalAction.ROLLBACK,
    )
    push(healthy, error_rate, [0.09] * 5, end=NOW)
    assert poisoned.pk < healthy.pk

    report = run_checks()

    healthy.refresh_from_db()
    assert healthy.status == ReleaseStatus.ROLLED_BACK
    assert report.rolled_back == [healthy.pk]
    poisoned.refresh_from_db()
    assert poisoned.status == ReleaseStatus.IN_PROGRESS
    check_run = CheckRun.objects.get(release=poisoned)
    assert check_run.action.startswith("not evaluated")
    assert not check_run.results.exists()
    recorded = failure("rollouts.checks")
    assert (recorded.item_type, recorded.item_id) == ("releases.release", str(poisoned.pk))
    assert recorded.error_class == "builtins.ZeroDivisionError"
    assert JobRun.objects.get(job="rollouts.checks").items_failed == 1


def test_auto_advance_moves_the_other_releases_when_one_gate_cannot_be_evaluated(clock, production):
    poisoned = running_release(plan("poisoned", auto=True), production, "poisoned")
    broken_freeze(poisoned.service)
    healthy = running_release(plan("healthy", auto=True), production, "healthy")
    assert poisoned.pk < healthy.pk

    report = auto_advance_due()

    assert report.advanced == [healthy.pk]
    healthy.refresh_from_db()
    assert healthy.current_stage.name == "full"
    poisoned.refresh_from_db()
    assert poisoned.current_stage.name == "canary"
    recorded = failure("rollouts.auto_advance")
    assert (recorded.item_type, recorded.item_id) == ("releases.release", str(poisoned.pk))
    assert NOT_A_ZONE in recorded.message


# --- incidents --------------------------------------------------------------------------------


def test_escalation_pages_the_other_incidents_when_one_rotation_has_no_zone(
    service, other_service, rita_actor, run, mailoutbox
):
    people = {
        name: contact(name.title())
        for name in ("ada", "ben", "sam", "pia", "emma", "xavier", "cleo")
    }
    IncidentRouting.objects.create(
        service=service, policy=make_policy(people, make_rotation("Platform", [people["ada"]]))
    )
    # Poison: L2 of the other service's policy is a rotation whose zone is no zone.
    bad_rotation = make_rotation("Billing on-call", [people["ben"]])
    bad_policy = EscalationPolicy.objects.create(name="Billing")
    EscalationLevel.objects.create(policy=bad_policy, position=1, after_minutes=0).contacts.set(
        [people["emma"]]
    )
    EscalationLevel.objects.create(
        policy=bad_policy, position=2, after_minutes=15, rotation=bad_rotation
    )
    IncidentRouting.objects.create(service=other_service, policy=bad_policy)
    start = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        poisoned = run(
            lifecycle.open_incident,
            service=other_service,
            title="Invoices fail",
            severity=Severity.SEV3,
            actor=rita_actor,
        )
        clock.shift(timedelta(seconds=1))
        healthy = run(
            lifecycle.open_incident,
            service=service,
            title="Checkout answers 500",
            severity=Severity.SEV3,
            actor=rita_actor,
        )
        OnCallRotation.objects.filter(pk=bad_rotation.pk).update(time_zone=NOT_A_ZONE)
        mailoutbox.clear()
        clock.shift(timedelta(minutes=15))
        report = run(escalation.escalate_due)

    assert report.escalated == [healthy.pk]
    assert sorted(a for m in mailoutbox for a in m.to) == ["pia@example.com", "sam@example.com"]
    poisoned.refresh_from_db()
    assert poisoned.escalation_step == 1  # its claim rolled back with the failed page
    recorded = failure("incidents.escalate")
    assert (recorded.item_type, recorded.item_id) == ("incidents.incident", str(poisoned.pk))
    assert NOT_A_ZONE in recorded.message


def test_delivery_retries_send_the_others_and_push_a_malformed_target_back(
    service, rita_actor, run, mailoutbox
):
    with time_machine.travel(NOW, tick=False) as clock:
        incident = lifecycle.open_incident(service=service, title="Down", actor=rita_actor)
        due = {"status": DeliveryStatus.FAILED, "next_attempt_at": NOW, "attempts": 1}
        # Poison: a webhook target that is not even a URL (an unclosed IPv6 host).
        poisoned = NotificationDelivery.objects.create(
            incident=incident,
            channel=Channel.WEBHOOK,
            target="https://[hooks.example.com/services/T0/B0/x",
            idempotency_key="poisoned",
            **due,
        )
        healthy = NotificationDelivery.objects.create(
            incident=incident,
            channel=Channel.EMAIL,
            target="ada@example.com",
            idempotency_key="healthy",
            **due,
        )
        clock.shift(timedelta(minutes=1))
        run(outbox_tasks.sweep)

    healthy.refresh_from_db()
    assert healthy.status == DeliveryStatus.SENT
    assert [m.to for m in mailoutbox] == [["ada@example.com"]]
    poisoned.refresh_from_db()
    # Not left claimed (which brings it back after every lease, for ever): due again later.
    assert poisoned.claimed_at is None
    assert poisoned.status == DeliveryStatus.FAILED
    assert poisoned.next_attempt_at > NOW + timedelta(minutes=1)
    assert "ValueError" in poisoned.last_error
    recorded = failure("outbox.send")
    assert recorded.item_id == str(poisoned.pk)
    assert JobRun.objects.get(job="outbox.sweep").outcome == RunOutcome.OK


# --- reports ----------------------------------------------------------------------------------


def subscription(address: str, time_zone: str = "UTC") -> ReportSubscription:
    return ReportSubscription.objects.create(
        email=address, frequency=Frequency.DAILY, hour=9, time_zone=time_zone
    )


def test_report_sends_reach_the_other_subscribers_when_one_has_no_zone(run, mailoutbox):
    with time_machine.travel(datetime(2026, 11, 2, 8, 0, tzinfo=UTC), tick=False) as clock:
        poisoned = subscription("broken@example.com")
        healthy = subscription("team@example.com")
        # Poison: a zone name that is no zone, saved past the field's validator.
        ReportSubscription.objects.filter(pk=poisoned.pk).update(time_zone=NOT_A_ZONE)
        due_at = healthy.next_due_at
        clock.move_to(due_at + timedelta(minutes=1))
        result = run(reports.send_due)

    assert result.claimed == [healthy.pk]
    assert [m.to for m in mailoutbox] == [["team@example.com"]]
    poisoned.refresh_from_db()
    assert poisoned.next_due_at == due_at  # its claim rolled back: the next run tries again
    recorded = failure("reports.send_due")
    assert (recorded.item_type, recorded.item_id) == (
        "reports.reportsubscription",
        str(poisoned.pk),
    )
    assert NOT_A_ZONE in recorded.message


def test_report_delivery_retries_send_the_others_and_push_the_bad_one_back(
    run, mailoutbox, monkeypatch
):
    """No data makes a report delivery raise past its own handler: a chart is made to."""
    at = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    with time_machine.travel(at, tick=False) as clock:
        bad_report, _ = reports.obtain_report(
            None, last_complete_period(Frequency.DAILY, at, "UTC")
        )
        good_report, _ = reports.obtain_report(
            None, last_complete_period(Frequency.WEEKLY, at, "UTC")
        )
        due = {"status": ReportDeliveryStatus.FAILED, "next_attempt_at": at, "attempts": 1}
        poisoned = ReportDelivery.objects.create(
            report=bad_report, address="bad@example.com", **due
        )
        healthy = ReportDelivery.objects.create(report=good_report, address="ok@example.com", **due)
        real = ReportChart.content_id

        def content_id(chart: ReportChart) -> str:
            if chart.report_id == bad_report.pk:
                raise RuntimeError("the chart cannot be read")
            return real.fget(chart)

        monkeypatch.setattr(ReportChart, "content_id", property(content_id))
        clock.shift(timedelta(minutes=1))
        run(outbox_tasks.sweep)

    healthy.refresh_from_db()
    assert healthy.status == ReportDeliveryStatus.SENT
    assert [m.to for m in mailoutbox] == [["ok@example.com"]]
    poisoned.refresh_from_db()
    assert poisoned.claimed_at is None
    assert poisoned.status == ReportDeliveryStatus.FAILED
    assert poisoned.next_attempt_at > at + timedelta(minutes=1)
    assert "the chart cannot be read" in poisoned.last_error
    assert failure("outbox.send").item_id == str(poisoned.pk)


def test_the_checks_tick_records_its_run_when_nothing_fails(clock, production, error_rate):
    quiet = plan("quiet")
    release = running_release(quiet, production, "quiet")
    # Two criteria: each is evaluated under the release's guard, then the release is decided.
    criterion(quiet, error_rate)
    criterion(quiet, error_rate, critical_threshold=0.2)
    push(release, error_rate, [0.01], end=NOW)
    run_checks()
    recorded = JobRun.objects.get(job="rollouts.checks")
    # One release, however many phases (evaluate each criterion, decide) guarded it.
    assert (recorded.outcome, recorded.items_done, recorded.items_failed) == (RunOutcome.OK, 1, 0)
    assert not JobItemFailure.objects.exists()
    assert mail.outbox == []
