"""The one template filter for a length of time: {% load durations %} {{ value|duration }}."""

from __future__ import annotations

from datetime import timedelta

from django import template

from apps.core.durations import format_duration

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    return format_duration(value)
