"""A stage in a sentence: its traffic said once (apps/core/stages.py)."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from apps.core.stages import stage_label


@pytest.mark.parametrize(
    ("name", "percentage", "said"),
    [
        ("canary", 5, "canary (5 %)"),
        ("25%", 25, "25 %"),
        ("25 %", 25, "25 %"),
        ("25%", 50, "25% (50 %)"),  # a name that is another percentage is kept with the traffic
        ("Phase 2: 5%", 5, "Phase 2: 5% (5 %)"),
        ("staging", None, "staging"),
    ],
)
def test_a_stage_named_by_its_traffic_says_it_once(name, percentage, said):
    assert stage_label(name, percentage) == said


def test_the_emails_filter_says_it_alike():
    template = Template("{% load stages %}{{ name|stage_label:pct }} / {{ other|stage_label:5 }}")
    assert template.render(Context({"name": "50%", "pct": 50, "other": "canary"})) == (
        "50 % / canary (5 %)"
    )


@pytest.mark.parametrize(
    ("stage", "said"), [("25%", ", at 25 %, asked"), ("canary", ", at canary (25 %), asked")]
)
def test_a_reminder_names_the_stage_a_release_waits_at_once(stage, said):
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from django.template.loader import render_to_string

    release = SimpleNamespace(
        service=SimpleNamespace(name="AI Orchestra"),
        version="2.4.0",
        destination="Production",
        current_stage=SimpleNamespace(name=stage),
        traffic_percentage=25,
    )
    item = SimpleNamespace(
        release=release, asked_at=datetime(2026, 12, 3, tzinfo=UTC), signoff_url="/s/"
    )
    person = SimpleNamespace(get_full_name="Alice", get_username="alice")
    for name in ("emails/signoff-reminder-body.txt", "emails/signoff-reminder-body.html"):
        text = render_to_string(name, {"person": person, "items": [item], "site_url": ""})
        assert f"Production</a>{said}" in text or f"Production{said}" in text, name
