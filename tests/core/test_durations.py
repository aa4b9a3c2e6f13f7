"""apps.core.durations: one way a length of time reads, in the gate, pages, admin and health."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template import Context, Template

from apps.core.durations import format_duration


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (None, "—"),
        (timedelta(seconds=-5), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=12, seconds=59), "12m"),
        (timedelta(hours=2, minutes=5), "2h 05m"),
        (timedelta(hours=23, minutes=59), "23h 59m"),
        (timedelta(days=3, hours=4, minutes=30), "3d 4h"),
    ],
)
def test_a_duration_reads_as_people_say_it(delta, text):
    assert format_duration(delta) == text


def test_the_template_filter_is_the_same_formatter():
    rendered = Template("{% load durations %}{{ d|duration }}").render(
        Context({"d": timedelta(hours=2, minutes=5)})
    )
    assert rendered == "2h 05m"
