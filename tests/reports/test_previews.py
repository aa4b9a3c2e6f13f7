"""A report made before its period ended is a preview: labelled so, and never the one the
schedule sends (defect 5 of "Lived-in flows")."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from apps.core.actors import Actor
from apps.reports import services
from apps.reports.models import Report, ReportSubscription
from apps.reports.schedule import period_containing
from apps.rollouts import transitions
from tests.factories import PlanFactory, make_release

from .conftest import at

pytestmark = pytest.mark.django_db

PREVIEW = "preview — period not over"


def test_the_morning_send_is_complete_though_a_preview_was_made_during_the_day(
    service, production, django_capture_on_commit_callbacks
):
    with at("2026-11-18 10:00"):  # next due: tomorrow 09:00 UTC
        ReportSubscription.objects.create(
            email="team@example.com", service=service, frequency="daily", hour=9
        )
    plan = PlanFactory(
        slug="quick",
        stages=[("canary", 5, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )
    release = make_release(service=service, environment=production, plan=plan, version="7.7.7")
    actor = Actor.system("tests")

    with at("2026-11-18 12:00"), django_capture_on_commit_callbacks(execute=True):
        call_command(
            "send_report", "--period", "daily", "--date", "2026-11-18",
            "--service", service.slug, "--time-zone", "UTC", stdout=StringIO(),
        )  # fmt: skip
    [noon] = mail.outbox
    assert noon.subject.endswith(f"Wed 18 Nov 2026 ({PREVIEW})")
    assert "PREVIEW — PERIOD NOT OVER" in noon.body
    assert "Preview — period not over" in noon.alternatives[0][0]
    assert "7.7.7" not in noon.body
    preview = Report.objects.get()
    assert preview.preview

    with at("2026-11-18 15:00"):
        transitions.start(release, actor=actor)
        transitions.advance(release, actor=actor)
        transitions.advance(release, actor=actor)  # completed in the afternoon
    mail.outbox.clear()

    with at("2026-11-19 09:01"), django_capture_on_commit_callbacks(execute=True):
        run = services.send_due()

    assert run.claimed and run.reports_generated == 1
    [morning] = mail.outbox
    assert morning.to == ["team@example.com"]
    assert morning.subject.endswith("Wed 18 Nov 2026")
    assert "7.7.7" in morning.body and "7.7.7" in morning.alternatives[0][0]
    assert "PREVIEW" not in morning.body
    complete = Report.objects.get(preview=False)
    assert complete.pk != preview.pk
    assert complete.period_start == preview.period_start


def test_the_report_page_says_a_preview_is_one(client, victor, service):
    with at("2026-11-18 12:00"):
        report, generated = services.obtain_report(
            service, period_containing("daily", date(2026, 11, 18), "UTC")
        )
    assert generated and report.preview
    client.force_login(victor)
    page = client.get(report.get_absolute_url())
    assert page.status_code == 200
    assert "Preview — period not over" in page.content.decode()
