"""Subscriptions fire once at their local hour, in any zone and across daylight-saving changes,
and each report covers the last whole local day or week."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from apps.reports import services
from apps.reports.choices import Frequency, Weekday
from apps.reports.models import Report, ReportSubscription

pytestmark = pytest.mark.django_db


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run_every_five_minutes(run, clock, until: datetime) -> list[tuple[datetime, str]]:
    """Run the scheduled task every 5 minutes up to `until`; (when, to) of each email sent."""
    sent = []
    while datetime.now(UTC) < until:
        before = len(mail.outbox)
        run(services.send_due)
        sent += [(datetime.now(UTC), m.to[0]) for m in mail.outbox[before:]]
        clock.shift(timedelta(minutes=5))
    return sent


def test_monday_nine_in_ho_chi_minh_and_in_los_angeles_each_arrive_once_at_their_hour(run):
    with time_machine.travel(utc("2026-11-20 00:00"), tick=False) as clock:
        vietnam = ReportSubscription.objects.create(
            email="hanoi@example.com", time_zone="Asia/Ho_Chi_Minh", weekday=Weekday.MONDAY, hour=9
        )
        california = ReportSubscription.objects.create(
            email="sf@example.com",
            time_zone="America/Los_Angeles",
            weekday=Weekday.MONDAY,
            hour=9,
        )
        # Monday 09:00 at UTC+7 is Monday 02:00 UTC; at UTC-8 (PST) it is Monday 17:00 UTC.
        assert vietnam.next_due_at == utc("2026-11-23 02:00")
        assert california.next_due_at == utc("2026-11-23 17:00")

        sent = run_every_five_minutes(run, clock, until=utc("2026-11-24 12:00"))

    assert sent == [
        (utc("2026-11-23 02:00"), "hanoi@example.com"),
        (utc("2026-11-23 17:00"), "sf@example.com"),
    ]
    reports = {r.time_zone: r for r in Report.objects.all()}
    # Each covers its own zone's Monday-to-Monday week.
    assert reports["Asia/Ho_Chi_Minh"].period_start == utc("2026-11-15 17:00")
    assert reports["America/Los_Angeles"].period_start == utc("2026-11-16 08:00")
    assert reports["America/Los_Angeles"].content["period"]["label"] == "Week 47, 16–22 Nov 2026"
    vietnam.refresh_from_db()
    assert vietnam.next_due_at == utc("2026-11-30 02:00")


def test_a_weekly_berlin_report_fires_once_at_nine_on_both_sides_of_the_dst_change(run):
    # Berlin leaves summer time on Sunday 25 Oct 2026 at 03:00 CEST (01:00 UTC).
    with time_machine.travel(utc("2026-10-17 12:00"), tick=False) as clock:
        subscription = ReportSubscription.objects.create(
            email="berlin@example.com", time_zone="Europe/Berlin", weekday=Weekday.MONDAY, hour=9
        )
        sent = run_every_five_minutes(run, clock, until=utc("2026-11-03 00:00"))

    # 09:00 CEST is 07:00 UTC; 09:00 CET is 08:00 UTC.
    assert sent == [
        (utc("2026-10-19 07:00"), "berlin@example.com"),
        (utc("2026-10-26 08:00"), "berlin@example.com"),
        (utc("2026-11-02 08:00"), "berlin@example.com"),
    ]
    # The week of the change runs from Monday 00:00 CEST to Monday 00:00 CET: 169 hours.
    across = Report.objects.get(period_start=utc("2026-10-18 22:00"))
    assert across.period_end == utc("2026-10-25 23:00")
    assert across.period_end - across.period_start == timedelta(hours=169)
    subscription.refresh_from_db()
    assert subscription.next_due_at == utc("2026-11-09 08:00")


def test_spring_forward_daily_report_at_a_skipped_hour_arrives_an_hour_later_once(run):
    # Berlin skips 02:00–03:00 on Sunday 29 March 2026.
    with time_machine.travel(utc("2026-03-27 12:00"), tick=False) as clock:
        ReportSubscription.objects.create(
            email="night@example.com",
            frequency=Frequency.DAILY,
            time_zone="Europe/Berlin",
            hour=2,
        )
        sent = run_every_five_minutes(run, clock, until=utc("2026-03-30 12:00"))
    assert [when for when, _ in sent] == [
        utc("2026-03-28 01:00"),  # 02:00 CET
        utc("2026-03-29 01:00"),  # 02:00 does not exist: 03:00 CEST
        utc("2026-03-30 00:00"),  # 02:00 CEST
    ]


def test_a_daily_report_covers_yesterday_and_changing_the_hour_reschedules_it(run):
    with time_machine.travel(utc("2026-11-18 10:00"), tick=False):
        subscription = ReportSubscription.objects.create(
            email="daily@example.com", frequency=Frequency.DAILY, time_zone="UTC", hour=8
        )
        assert subscription.next_due_at == utc("2026-11-19 08:00")
        subscription.hour = 11
        subscription.save()
        assert subscription.next_due_at == utc("2026-11-18 11:00")
    with time_machine.travel(utc("2026-11-18 11:00"), tick=False):
        run(services.send_due)
    report = Report.objects.get()
    assert (report.period_start, report.period_end) == (
        utc("2026-11-17 00:00"),
        utc("2026-11-18 00:00"),
    )
    assert mail.outbox[0].subject == ("[rolloutdesk] Daily report · All services · Tue 17 Nov 2026")


def test_subscribers_of_the_same_scope_and_zone_share_one_report(run, service):
    with time_machine.travel(utc("2026-11-22 12:00"), tick=False) as clock:
        for address in ("a@example.com", "b@example.com"):
            ReportSubscription.objects.create(email=address, service=service)
        ReportSubscription.objects.create(email="all@example.com")
        ReportSubscription.objects.create(email="paused@example.com", active=False)
        clock.move_to(utc("2026-11-23 09:00"))
        result = run(services.send_due)
    assert (len(result.claimed), result.reports_generated, result.deliveries) == (3, 2, 3)
    by_scope = {
        r.service_id: sorted(d.address for d in r.deliveries.all()) for r in Report.objects.all()
    }
    assert by_scope == {service.pk: ["a@example.com", "b@example.com"], None: ["all@example.com"]}
    assert sorted(m.to[0] for m in mail.outbox) == [
        "a@example.com",
        "all@example.com",
        "b@example.com",
    ]


def test_beat_runs_the_due_reports_task_every_five_minutes(settings):
    from apps.reports.tasks import send_due_reports

    entry = settings.CELERY_BEAT_SCHEDULE["reports-send-due"]
    assert entry["schedule"] == 300.0
    assert entry["task"] == send_due_reports.name
