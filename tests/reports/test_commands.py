"""Backfill and one-off runs from the command line: `send_report` and `send_reports`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import CommandError, call_command

from apps.reports.models import Report, ReportDelivery, ReportSubscription

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def command(name: str, *args: str, capture) -> str:
    out = StringIO()
    with time_machine.travel(NOW, tick=False), capture(execute=True):
        call_command(name, *args, stdout=out)
    return out.getvalue()


def test_dry_run_prints_the_report_and_stores_and_sends_nothing(
    week, django_capture_on_commit_callbacks
):
    out = command(
        "send_report",
        "--period",
        "weekly",
        "--date",
        "2026-11-18",
        "--dry-run",
        capture=django_capture_on_commit_callbacks,
    )
    assert "Subject: [rolloutdesk] Weekly report · All services · Week 47, 16–22 Nov 2026" in out
    assert "Releases started: 8 / 2 / +6" in out
    assert "dry run: nothing stored or sent; 2 charts drawn" in out
    assert Report.objects.count() == 0 and mail.outbox == []


def test_backfill_sends_to_the_subscribers_of_its_kind_and_scope(
    week, service, django_capture_on_commit_callbacks
):
    with time_machine.travel(NOW - timedelta(days=1), tick=False):
        ReportSubscription.objects.create(email="orchestra@example.com", service=service)
        ReportSubscription.objects.create(email="everything@example.com")
        ReportSubscription.objects.create(
            email="daily@example.com", service=service, frequency="daily"
        )
    args = ["--period", "weekly", "--date", "2026-11-16", "--service", "ai-orchestra"]
    out = command("send_report", *args, capture=django_capture_on_commit_callbacks)
    report = Report.objects.get()
    assert f"Generated report #{report.pk}" in out
    assert "Queued 1 delivery(ies) to orchestra@example.com" in out
    assert [m.to for m in mail.outbox] == [["orchestra@example.com"]]
    assert mail.outbox[0].subject.endswith("AI Orchestra · Week 47, 16–22 Nov 2026")
    assert report.content["overview"][0]["current"] == 5  # AI Orchestra's releases only

    # Run again: the stored report is reused and nobody gets it twice.
    out = command("send_report", *args, capture=django_capture_on_commit_callbacks)
    assert "Found report" in out and "every recipient had it" in out
    assert len(mail.outbox) == 1

    out = command(
        "send_report", *args, "--to", "cto@example.com", capture=django_capture_on_commit_callbacks
    )
    assert [m.to for m in mail.outbox][-1] == ["cto@example.com"]
    assert ReportDelivery.objects.filter(report=report).count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "16/11/2026"], "is not a date like 2026-11-16"),
        (["--date", "2026-11-16", "--service", "nope"], "No service 'nope'"),
        (["--date", "2026-11-16", "--time-zone", "Mars/Olympus"], "is not a time zone name"),
        (["--date", "2026-11-16", "--to", "not-an-address"], "valid email"),
    ],
)
def test_bad_arguments_are_named_and_nothing_is_stored(args, message, db):
    with pytest.raises(CommandError, match=message):
        call_command("send_report", "--period", "weekly", *args)
    assert Report.objects.count() == 0


def test_send_reports_runs_the_scheduled_task_once(django_capture_on_commit_callbacks):
    with time_machine.travel(NOW - timedelta(days=3), tick=False):
        ReportSubscription.objects.create(email="em@example.com")
    out = command("send_reports", capture=django_capture_on_commit_callbacks)
    assert "Claimed 1 due subscription(s)" in out
    assert [m.to for m in mail.outbox] == [["em@example.com"]]
