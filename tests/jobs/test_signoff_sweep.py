"""The sign-off sweep with demo-like data: a planned release whose plan asks no sign-off at all
beside one waiting only for its sign-off (defect 1 of "Lived-in flows")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group

from apps.jobs.models import JobItemFailure
from apps.rollouts import tasks
from apps.signoffs.models import SignOffRule
from tests.factories import PlanFactory, ServiceFactory, UserFactory, make_release

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_a_release_without_rules_neither_stops_the_requests_nor_the_reminders(
    settings, production, django_capture_on_commit_callbacks, mailoutbox
):
    settings.SIGNOFF_REMINDER_HOURS = 4
    approvers = Group.objects.create(name="Gatekeepers")
    UserFactory(username="gail").groups.add(approvers)
    stages = [("canary", 5, timedelta(0), False), ("full", 100, timedelta(0), False)]
    # First in the loop: a planned release whose plan has no sign-off rule at all.
    unruled = make_release(
        service=ServiceFactory(slug="unruled"),
        environment=production,
        plan=PlanFactory(slug="no-rules", stages=stages),
    )
    gated_plan = PlanFactory(slug="gated", stages=stages)
    SignOffRule.objects.create(plan=gated_plan).groups.add(approvers)
    gated = make_release(
        service=ServiceFactory(slug="gated"), environment=production, plan=gated_plan
    )
    assert unruled.pk < gated.pk

    def sweep() -> dict[str, int]:
        with django_capture_on_commit_callbacks(execute=True):
            return tasks.signoffs_sweep()

    with time_machine.travel(T0, tick=False) as clock:
        assert sweep() == {"gates_asked": 1, "people_reminded": 0}
        assert [m.to for m in mailoutbox] == [["gail@example.com"]]
        assert f"/releases/{gated.pk}/signoff/" in mailoutbox[0].body
        mailoutbox.clear()
        clock.shift(timedelta(hours=4))
        assert sweep() == {"gates_asked": 0, "people_reminded": 1}
    assert [m.to for m in mailoutbox] == [["gail@example.com"]]
    assert mailoutbox[0].subject.startswith("Reminder")
    # Not a failure skipped every minute: the release without rules is no candidate at all.
    assert not JobItemFailure.objects.exists()
