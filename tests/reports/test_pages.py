"""The archive in the browser: /reports/ and /reports/<id>/ for signed-in people with a role,
the charts as PNG, and the report's tables as CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse

from apps.reports import services
from apps.reports.schedule import period_containing
from tests.factories import UserFactory
from tests.reports.conftest import GENERATED_AT

pytestmark = pytest.mark.django_db


@pytest.fixture
def report(week, run):
    period = period_containing("weekly", date(2026, 11, 16), "UTC")
    with time_machine.travel(datetime.fromisoformat(GENERATED_AT), tick=False):
        stored, _ = services.obtain_report(None, period)
        run(services.add_recipients, stored, [("em@example.com", None)])
    return stored


def test_the_pages_need_a_sign_in(client, report):
    for url in [
        reverse("reports:list"),
        reverse("reports:detail", args=[report.pk]),
        reverse("reports:csv", args=[report.pk]),
        reverse("reports:chart", args=[report.pk, "releases-per-week"]),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("signoffs:login"))


def test_people_without_a_role_are_told_why(client, report):
    client.force_login(UserFactory(username="nobody"))
    response = client.get(reverse("reports:detail", args=[report.pk]))
    assert response.status_code == 403
    assert "Viewers" in response.content.decode()


def test_the_report_page_shows_the_emailed_report_with_its_charts(client, victor, report):
    client.force_login(victor)
    response = client.get(reverse("reports:detail", args=[report.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Weekly report · All services" in page
    assert "Week 47, 16–22 Nov 2026" in page
    assert ">Change failure rate</td>" in page
    chart_url = reverse("reports:chart", args=[report.pk, "change-failure-rate"])
    assert f'src="{chart_url}"' in page
    assert "em@example.com" in page and "Sent" in page  # who it went to
    chart = client.get(chart_url)
    assert chart["Content-Type"] == "image/png"
    assert chart.content.startswith(b"\x89PNG")
    assert client.get(reverse("reports:chart", args=[report.pk, "nope"])).status_code == 404


def test_the_list_links_every_report_in_a_fixed_number_of_queries(
    client, victor, report, django_assert_num_queries, service
):
    client.force_login(victor)
    client.get(reverse("reports:list"))  # warm the session and permission caches
    # session, user, user and group permissions, the count, the page of reports
    with django_assert_num_queries(6):
        response = client.get(reverse("reports:list"))
    assert reverse("reports:detail", args=[report.pk]) in response.content.decode()
    assert "1/1" in response.content.decode()

    with time_machine.travel(datetime.fromisoformat(GENERATED_AT), tick=False):
        for day in (date(2026, 11, 9), date(2026, 11, 2)):
            services.obtain_report(service, period_containing("weekly", day, "UTC"))
    with django_assert_num_queries(6):
        response = client.get(reverse("reports:list"))
    assert len(re.findall(r'href="/reports/\d+/"', response.content.decode())) == 3


def test_the_release_table_downloads_as_csv(client, victor, report):
    client.force_login(victor)
    response = client.get(reverse("reports:csv", args=[report.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        f'filename="report-{report.pk}-weekly-2026-11-16-releases.csv"'
        in response["Content-Disposition"]
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 8
    by_version = {row["version"]: row for row in rows}
    assert by_version["2.0.0"] | {} == {
        "service": "AI Orchestra",
        "version": "2.0.0",
        "environment": "Production",
        "production": "True",
        "status": "completed",
        "stage": "",
        "traffic_percentage": "100",
        "started_at": "2026-11-16T10:00:00+00:00",
        "finished_at": "2026-11-17T10:00:00+00:00",
        "lead_time_seconds": "93600.0",
        "incidents": "0",
    }
    assert by_version["2.0.3"]["stage"] == "canary"


def test_the_dora_table_downloads_as_csv(client, victor, report):
    client.force_login(victor)
    response = client.get(reverse("reports:csv", args=[report.pk]) + "?table=dora")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["service"], r["deployments"], r["failed"], r["finished"]) for r in rows] == [
        ("All services", "3", "3", "5"),
        ("AI Orchestra", "2", "2", "3"),
        ("Billing", "1", "1", "2"),
    ]
    assert client.get(reverse("reports:csv", args=[report.pk]) + "?table=x").status_code == 404


def test_the_navigation_links_the_reports(client, victor, report):
    client.force_login(victor)
    page = client.get(reverse("reports:list")).content.decode()
    assert 'href="/reports/"' in page
    assert Group.objects.get(name="Viewers").permissions.filter(codename="view_report").exists()
