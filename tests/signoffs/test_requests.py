"""Sign-off requests by email: one per required signer per gate; reminders at most once a period."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from apps.core.actors import Actor
from apps.outbox import engine as outbox_engine
from apps.outbox.models import Message
from apps.releases.choices import EventVerb
from apps.rollouts import tasks, transitions
from apps.signoffs import asking, services
from apps.signoffs.choices import Decision
from apps.signoffs.models import SignOffRequest
from tests.factories import EnvironmentFactory, PlanFactory, UserFactory, make_release

from .conftest import EM, PRODUCT, add_rule, member

pytestmark = pytest.mark.django_db

T0 = "2026-11-02 09:00:00+00:00"
SYSTEM = Actor.system("tests")


@pytest.fixture
def soaking_plan(db):
    return PlanFactory(
        slug="soaking",
        stages=[("canary", 5, timedelta(hours=1), False), ("full", 100, timedelta(0), False)],
    )


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """Run the scheduled task the way beat does, with its emails sent after commit."""

    def run() -> dict[str, int]:
        with django_capture_on_commit_callbacks(execute=True):
            return tasks.signoffs_sweep()

    return run


def recipients(mailoutbox) -> list[str]:
    return sorted(address for m in mailoutbox for address in m.to)


def test_one_request_per_signer_once_the_other_conditions_are_met(
    soaking_plan, groups, service, production, erin, paul, dave, mailoutbox, sweep
):
    add_rule(soaking_plan, "canary", [groups[EM], groups[PRODUCT]])
    UserFactory(username="noemail", email="").groups.add(groups[PRODUCT])
    with time_machine.travel(T0, tick=False) as clock:
        release = make_release(service=service, environment=production, plan=soaking_plan)
        transitions.start(release, actor=SYSTEM)
        assert sweep()["gates_asked"] == 0  # still soaking: nobody is asked yet
        assert mailoutbox == []

        clock.shift(timedelta(hours=1, minutes=1))
        assert sweep()["gates_asked"] == 1
        assert sweep()["gates_asked"] == 0  # run twice in a row: nobody is asked twice
        assert recipients(mailoutbox) == ["erin@example.com", "paul@example.com"]

    message = next(m for m in mailoutbox if m.to == ["paul@example.com"])
    assert message.subject == (
        f"[AI Orchestra] Sign-off needed: {release.version} → Production, leaving stage canary"
    )
    url = f"http://127.0.0.1:8000/releases/{release.pk}/signoff/"
    html = message.alternatives[0][0]
    for part in (message.body, html):
        assert url in part
        assert "Stage: canary" in part or "<td>canary</td>" in part
        assert "a go from Engineering managers, Product" in part
        assert "Sign-off needed for leaving stage canary" in part  # the gate's state
    event = release.events.get(verb=EventVerb.SIGNOFFS_REQUESTED)
    assert sorted(event.data["asked"]) == ["erin", "paul"]


def test_running_the_send_task_twice_sends_once(running, erin, paul, mailoutbox):
    requests = asking.request_signoffs(running, actor=SYSTEM)  # emails are queued on commit
    assert mailoutbox == []
    for request in requests:
        message = Message.objects.get(args={"request": request.pk})
        assert outbox_engine.send("outbox.message", message.pk) == "sent"
        assert outbox_engine.send("outbox.message", message.pk) == "not due or taken"
    assert recipients(mailoutbox) == ["erin@example.com", "paul@example.com"]
    assert all(r.sent_at is not None for r in SignOffRequest.objects.all())
    assert asking.request_signoffs(running, actor=SYSTEM) == []  # asked already


def test_the_author_and_those_who_signed_are_not_asked(
    plan, groups, service, production, erin, paul, mailoutbox, django_capture_on_commit_callbacks
):
    add_rule(plan, "canary", [groups[EM], groups[PRODUCT]])
    release = make_release(service=service, environment=production, plan=plan, author=erin)
    transitions.start(release, actor=SYSTEM)
    other = member("pia", groups[PRODUCT])
    services.sign(release, user=other, decision=Decision.GO)
    with django_capture_on_commit_callbacks(execute=True):
        asking.request_signoffs(release, actor=SYSTEM)
    assert recipients(mailoutbox) == ["paul@example.com"]


def test_each_gate_asks_again(plan, groups, service, production, erin, paul, mailoutbox, sweep):
    add_rule(plan, "canary", [groups[EM]])
    add_rule(plan, "half", [groups[EM]])
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=SYSTEM)
    sweep()
    services.sign(release, user=erin, decision=Decision.GO)
    transitions.advance(release, actor=SYSTEM)
    sweep()
    sweep()
    assert recipients(mailoutbox) == ["erin@example.com", "erin@example.com"]
    assert SignOffRequest.objects.filter(user=erin).count() == 2


def test_reminders_at_most_once_per_period(
    settings, soaking_plan, plan, groups, service, production, erin, paul, mailoutbox, sweep
):
    settings.SIGNOFF_REMINDER_HOURS = 4
    add_rule(soaking_plan, "canary", [groups[EM], groups[PRODUCT]])
    add_rule(plan, None, [groups[EM]])
    with time_machine.travel(T0, tick=False) as clock:
        release = make_release(service=service, environment=production, plan=soaking_plan)
        transitions.start(release, actor=SYSTEM)
        clock.shift(timedelta(hours=1))
        sweep()
        # A second release waits for Erin too: her reminders cover both, in one email. It goes
        # to staging: in production it would also wait for the first to finish, and nobody is
        # asked to sign a gate that waits for more than sign-offs.
        staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
        second = make_release(service=service, environment=staging, plan=plan)
        sweep()
        assert len(mailoutbox) == 3
        mailoutbox.clear()

        clock.shift(timedelta(hours=3, minutes=59))
        sweep()
        assert mailoutbox == []  # not yet a period since the requests

        clock.shift(timedelta(minutes=1))
        assert sweep()["people_reminded"] == 2
        assert sweep()["people_reminded"] == 0  # run twice in a row
        assert recipients(mailoutbox) == ["erin@example.com", "paul@example.com"]
        to_erin = next(m for m in mailoutbox if m.to == ["erin@example.com"])
        assert to_erin.subject == "Reminder: 2 sign-offs waiting for you"
        for part in (to_erin.body, to_erin.alternatives[0][0]):
            assert f"/releases/{release.pk}/signoff/" in part
            assert f"/releases/{second.pk}/signoff/" in part
        mailoutbox.clear()

        services.sign(release, user=paul, decision=Decision.GO)
        clock.shift(timedelta(hours=2))
        sweep()
        assert mailoutbox == []  # within the period
        clock.shift(timedelta(hours=2))
        sweep()
        sweep()
        assert recipients(mailoutbox) == ["erin@example.com"]  # Paul has signed
        mailoutbox.clear()

        services.sign(release, user=erin, decision=Decision.GO)
        services.sign(second, user=erin, decision=Decision.GO)
        clock.shift(timedelta(hours=5))
        sweep()
        assert mailoutbox == []  # nothing waits any more


def test_reminder_sending_is_claimed_per_person(settings, running, erin, paul, mailoutbox):
    settings.SIGNOFF_REMINDER_HOURS = 1
    with time_machine.travel(T0, tick=False) as clock:
        asking.request_signoffs(running, actor=SYSTEM)
        for message in Message.objects.all():
            outbox_engine.send("outbox.message", message.pk)
        clock.shift(timedelta(hours=1))
        first = asking.remind_due()
        second = asking.remind_due()  # a second worker at the same moment
    assert sorted(first) == sorted([erin.pk, paul.pk])
    assert second == {}


def test_a_user_without_groups_is_never_asked(running, mailoutbox, sweep):
    UserFactory(username="nobody")
    sweep()
    assert "nobody@example.com" not in recipients(mailoutbox)


def test_a_request_due_later_waits_for_the_persons_next_period(
    settings, plan, groups, service, production, erin, mailoutbox, sweep
):
    settings.SIGNOFF_REMINDER_HOURS = 4
    add_rule(plan, None, [groups[EM]])
    with time_machine.travel(T0, tick=False) as clock:
        first = make_release(service=service, environment=production, plan=plan)
        sweep()
        clock.shift(timedelta(hours=2))
        second = make_release(service=service, environment=production, plan=plan)
        sweep()
        assert len(mailoutbox) == 2  # the two requests
        mailoutbox.clear()

        clock.shift(timedelta(hours=2))  # the first request is due; the second is not yet
        sweep()
        assert [m.subject for m in mailoutbox] == ["Reminder: 1 sign-off waiting for you"]
        assert f"/releases/{first.pk}/signoff/" in mailoutbox[0].body
        mailoutbox.clear()

        clock.shift(timedelta(hours=2))  # the second is due, but Erin was reminded 2 h ago
        sweep()
        assert mailoutbox == []

        clock.shift(timedelta(hours=2))
        sweep()
        assert [m.subject for m in mailoutbox] == ["Reminder: 2 sign-offs waiting for you"]
        assert f"/releases/{second.pk}/signoff/" in mailoutbox[0].body


def test_no_gos_and_decisions_reach_the_services_notification_list(
    running, service, erin, paul, mailoutbox, django_capture_on_commit_callbacks
):
    service.notification_emails = "team@example.com"
    service.save(update_fields=["notification_emails"])
    with django_capture_on_commit_callbacks(execute=True):
        services.sign(running, user=erin, decision=Decision.GO)
    assert mailoutbox == []  # a single go is no news
    with django_capture_on_commit_callbacks(execute=True):
        services.sign(running, user=paul, decision=Decision.NO_GO, comment="Pager storm")
    no_go = mailoutbox.pop()
    assert no_go.to == ["team@example.com"]
    assert no_go.subject.endswith(": no-go from paul (canary)")
    for part in (no_go.body, no_go.alternatives[0][0]):
        assert "Pager storm" in part and f"/releases/{running.pk}/signoff/" in part
    with django_capture_on_commit_callbacks(execute=True):
        services.sign(running, user=paul, decision=Decision.GO, comment="calm again")
    decided = mailoutbox.pop()
    assert decided.subject.endswith(": go decided (canary)")
    assert "paul: go — calm again" in decided.body
    assert "erin: go" in decided.body
