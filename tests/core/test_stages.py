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
