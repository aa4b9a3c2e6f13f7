"""API representations of incidents and their timeline, and the input the endpoints accept."""

from __future__ import annotations

from rest_framework import serializers

from apps.incidents.choices import Severity
from apps.incidents.models import EscalationPolicy, Incident, IncidentEvent
from apps.releases.models import Release, Service


class IncidentEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")
    summary = serializers.CharField()

    class Meta:
        model = IncidentEvent
        fields = ["id", "created_at", "verb", "summary", "actor", "reason", "data"]


class IncidentSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # allow_null: an incident opened by hand or by an alert has no release, maybe no policy.
    release = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    policy = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    # What chose the policy (rule, service, named, none), the rule's id, and that in a sentence.
    routing_rule = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    time_to_acknowledge_seconds = serializers.SerializerMethodField()
    time_to_resolve_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "description",
            "severity",
            "status",
            "source",
            "service",
            "release",
            "fingerprint",
            "link",
            "policy",
            "routed_by",
            "routing_rule",
            "routing_note",
            "trigger_count",
            "escalation_step",
            "opened_at",
            "acknowledged_at",
            "mitigated_at",
            "resolved_at",
            "time_to_acknowledge_seconds",
            "time_to_resolve_seconds",
        ]

    def get_time_to_acknowledge_seconds(self, obj: Incident) -> int | None:
        value = obj.time_to_acknowledge
        return None if value is None else int(value.total_seconds())

    def get_time_to_resolve_seconds(self, obj: Incident) -> int | None:
        value = obj.time_to_resolve
        return None if value is None else int(value.total_seconds())


class IncidentDetailSerializer(IncidentSerializer):
    timeline = IncidentEventSerializer(many=True, read_only=True, source="ordered_events")
    # The timetable frozen when the escalation started (null without a policy): what
    # `escalation_step` counts rows of, whatever the policy says today.
    escalation = serializers.JSONField(source="escalation_snapshot", read_only=True)

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "labels", "escalation", "timeline"]


class IncidentCreateSerializer(serializers.Serializer):
    """Open an incident by hand (or from a deploy script)."""

    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    title = serializers.CharField(max_length=200)
    severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.SEV3)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    release = serializers.PrimaryKeyRelatedField(
        queryset=Release.objects.all(), required=False, allow_null=True, default=None
    )
    # Named by hand, it is paged instead of what the routing rules or the service would choose.
    policy = serializers.SlugRelatedField(
        slug_field="name",
        queryset=EscalationPolicy.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        error_messages={"does_not_exist": "There is no escalation policy named {value!r}."},
    )

    def validate(self, attrs: dict) -> dict:
        release = attrs.get("release")
        if release is not None and release.service_id != attrs["service"].pk:
            raise serializers.ValidationError(
                {"release": f"Release {release.pk} is not a release of {attrs['service'].slug!r}."}
            )
        return attrs


class IncidentActionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
