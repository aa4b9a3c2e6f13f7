"""API representations of metric criteria and check results."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.checks.models import CheckResult, MetricCriterion


class CriterionSerializer(serializers.ModelSerializer):
    """What CI must feed and how it is judged."""

    metric = serializers.SlugRelatedField(slug_field="key", read_only=True)
    unit = serializers.CharField(source="metric.unit", read_only=True)
    for_seconds = serializers.SerializerMethodField()
    interval_seconds = serializers.SerializerMethodField()

    class Meta:
        model = MetricCriterion
        fields = [
            "id",
            "metric",
            "unit",
            "label",
            "comparator",
            "warning_threshold",
            "critical_threshold",
            "reference",
            "tolerance",
            "significance_test",
            "method",
            "p_value",
            "minimum_effect",
            "success",
            "for_seconds",
            "interval_seconds",
            "consecutive",
            "min_samples",
            "on_warning",
            "on_critical",
            "incident_severity",
            "dry_run",
        ]

    def get_for_seconds(self, obj: MetricCriterion) -> int:
        return int(obj.for_window.total_seconds())

    def get_interval_seconds(self, obj: MetricCriterion) -> int:
        return int(obj.interval.total_seconds())


class LatestResultSerializer(serializers.Serializer):
    """One criterion's latest evaluation for a release (verdict null: not evaluated yet)."""

    criterion = serializers.IntegerField()
    metric = serializers.CharField()
    label = serializers.CharField()
    verdict = serializers.CharField(allow_null=True)
    level = serializers.CharField(allow_null=True)
    value = serializers.FloatField(allow_null=True)
    value_display = serializers.CharField(allow_null=True)
    reference_value = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    samples = serializers.IntegerField(allow_null=True)
    more_needed = serializers.IntegerField(
        allow_null=True,
        help_text="Sequential test: samples (requests, for a rate) still needed to decide on "
        "the minimum effect; 0 decided, null not estimable.",
    )
    detail = serializers.CharField(allow_blank=True)
    dry_run = serializers.BooleanField()
    at = serializers.DateTimeField(allow_null=True)


class LatestChecksSerializer(serializers.Serializer):
    release = serializers.IntegerField()
    status = serializers.CharField()
    stage = serializers.CharField(allow_null=True)
    criteria = LatestResultSerializer(many=True)


def latest_payload(criterion: MetricCriterion, result: CheckResult | None) -> dict[str, Any]:
    """The latest-result document of one criterion."""
    return {
        "criterion": criterion.pk,
        "metric": criterion.metric.key,
        "label": criterion.label,
        "verdict": result.verdict if result else None,
        "level": result.level if result else None,
        "value": result.value if result else None,
        "value_display": criterion.metric.format(result.value) if result else None,
        "reference_value": result.reference_value if result else None,
        "p_value": result.p_value if result else None,
        "threshold": result.threshold if result else None,
        "samples": result.samples if result else None,
        "more_needed": result.more_needed if result else None,
        "detail": result.detail if result else "",
        "dry_run": criterion.dry_run,
        "at": result.at if result else None,
    }
