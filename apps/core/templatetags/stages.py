"""{% load stages %} {{ name|stage_label:percentage }}: a stage in a sentence (core.stages)."""

from __future__ import annotations

from django import template

from apps.core.stages import stage_label as _stage_label

register = template.Library()


@register.filter
def stage_label(name: str, percentage: int | str | None) -> str:
    return _stage_label(str(name), percentage)
