"""API representations of services, plans and releases, and the input they accept."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.releases.choices import EventVerb
from apps.releases.models import (
    Environment,
    Event,
    Release,
    RolloutPlan,
    Service,
    Stage,
    StageTemplate,
    sha_validator,
)
from apps.rollouts import verdicts

from .serializers_checks import CriterionSerializer


class StageTemplateSerializer(serializers.ModelSerializer):
    min_soak_seconds = serializers.SerializerMethodField()
    criteria = CriterionSerializer(many=True, read_only=True, source="enabled_criteria")

    class Meta:
        model = StageTemplate
        fields = [
            "position",
            "name",
            "traffic_percentage",
            "min_soak_seconds",
            "auto_advance",
            "min_requests",
            "criteria",
        ]

    def get_min_soak_seconds(self, obj: StageTemplate) -> int:
        return int(obj.min_soak.total_seconds())


class PlanSerializer(serializers.ModelSerializer):
    stages = StageTemplateSerializer(many=True, read_only=True)
    # Criteria on the plan watch every stage; a stage's own are listed with it.
    criteria = CriterionSerializer(many=True, read_only=True, source="enabled_criteria")

    class Meta:
        model = RolloutPlan
        fields = ["id", "name", "slug", "description", "stages", "criteria"]


class ServiceSerializer(serializers.ModelSerializer):
    default_plan = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = Service
        fields = ["id", "name", "slug", "owner_team", "description", "default_plan"]


class StageSerializer(serializers.ModelSerializer):
    min_soak_seconds = serializers.SerializerMethodField()
    # Where the stage runs (a plan may go staging, then production) and the commit it ran
    # ("" until entered): the evidence the step into another environment rests on.
    environment = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Stage
        fields = [
            "position",
            "name",
            "traffic_percentage",
            "min_soak_seconds",
            "auto_advance",
            "status",
            "entered_at",
            "exited_at",
            "environment",
            "commit_sha",
        ]

    def get_min_soak_seconds(self, obj: Stage) -> int:
        return int(obj.min_soak.total_seconds())


class ReleaseSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    plan = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # allow_null: the schema says null where the answer can be (a planned or finished release).
    stage = serializers.CharField(
        source="current_stage.name", default=None, read_only=True, allow_null=True
    )
    traffic_percentage = serializers.IntegerField(read_only=True)
    author = serializers.CharField(source="author_display", read_only=True)
    current_environment = serializers.SerializerMethodField(
        help_text="Where the release is now: its current stage's environment (a planned "
        "release's first stage's). `environment` is where its plan ends up."
    )

    class Meta:
        model = Release
        fields = [
            "id",
            "service",
            "environment",
            "version",
            "plan",
            "status",
            "stage",
            "traffic_percentage",
            "current_environment",
            "commit_sha",
            "commit_time",
            "changelog_url",
            "author",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_current_environment(self, obj: Release) -> str:
        annotated = getattr(obj, "current_environment_slug", None)
        return annotated or obj.current_environment.slug


class ReleaseDetailSerializer(ReleaseSerializer):
    stages = StageSerializer(many=True, read_only=True)

    class Meta(ReleaseSerializer.Meta):
        fields = ReleaseSerializer.Meta.fields + ["stages"]


def _release_max(name: str) -> int:
    """A Release column's max_length, so that input longer than the column is a 400, not a 500."""
    return Release._meta.get_field(name).max_length


class ReleaseCreateSerializer(serializers.Serializer):
    """What CI sends to register a release."""

    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all()
    )
    version = serializers.CharField(max_length=_release_max("version"))
    plan = serializers.SlugRelatedField(
        slug_field="slug", queryset=RolloutPlan.objects.all(), required=False, allow_null=True
    )
    commit_sha = serializers.CharField(
        max_length=_release_max("commit_sha"),
        required=False,
        allow_blank=True,
        validators=[sha_validator],
    )
    commit_time = serializers.DateTimeField(required=False, allow_null=True)
    changelog_url = serializers.URLField(
        max_length=_release_max("changelog_url"), required=False, allow_blank=True
    )
    author = serializers.CharField(
        max_length=_release_max("author_name"), required=False, allow_blank=True
    )

    def validate_version(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("A version may not be blank.")
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": 80},
            {"type": "integer", "minimum": 0},
        ],
        "description": (
            "The stage the caller saw the release at: its name (a string) or its position "
            "(an integer, 0 = the first stage). If the release is no longer there the step is "
            "refused with 409 and nothing is done, so a retried request never steps twice. "
            "A name that two stages of the release share is refused (400): give the position."
        ),
    }
)
class StageRefField(serializers.Field):
    """A stage by name (a JSON string) or by position (a JSON integer)."""

    default_error_messages = {
        "invalid": "Give the stage's name (a string) or its position (an integer from 0)."
    }

    def to_internal_value(self, data: Any) -> str | int:
        if isinstance(data, bool):  # True is an int to Python, not a position to anyone
            self.fail("invalid")
        if isinstance(data, int) and data >= 0:
            return data
        if isinstance(data, str) and data.strip() and len(data) <= 80:
            return data.strip()
        self.fail("invalid")

    def to_representation(self, value: str | int) -> str | int:
        return value


class ReasonSerializer(serializers.Serializer):
    """Body of a transition: a reason (required to pause, roll back, abort or force:
    apps.rollouts.inputs), `force` for release managers, and the stage the caller started
    from (`from_stage`)."""

    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    force = serializers.BooleanField(required=False, default=False)
    from_stage = StageRefField(required=False, allow_null=True, default=None)


class StepBackSerializer(serializers.Serializer):
    """Body of a step back: the reason (required), the earlier stage to go to (`to_stage`, by
    name or position; the previous stage when absent) and the stage the caller saw
    (`from_stage`). A step back has no gate, so nothing to force."""

    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    to_stage = StageRefField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The earlier stage to step back to: its name (a string) or its position (an "
        "integer, 0 = the first stage), in the environment the release runs in now. Absent: "
        "the previous stage. The current stage or a later one is refused (400).",
    )
    from_stage = StageRefField(required=False, allow_null=True, default=None)


class ReleaseEventSerializer(serializers.ModelSerializer):
    """One entry of a release's story: what happened, who did it, why, and its data (for an
    automatic pause or rollback, `data.breaches`: criterion, value, threshold)."""

    stage = serializers.CharField(source="stage.name", allow_null=True, default=None)
    actor = serializers.CharField(source="actor_name")
    data = serializers.JSONField()

    class Meta:
        model = Event
        fields = ["id", "created_at", "verb", "stage", "actor", "actor_kind", "reason", "data"]


class ReleaseEventPageSerializer(serializers.Serializer):
    """A page of events, oldest first (limit / offset, as every list)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ReleaseEventSerializer(many=True)


class ReleaseEventQuerySerializer(serializers.Serializer):
    verb = serializers.MultipleChoiceField(
        choices=EventVerb.choices,
        required=False,
        help_text="Only these verbs (repeat the parameter for several).",
    )


class BlockerSerializer(serializers.Serializer):
    kind = serializers.CharField()
    detail = serializers.CharField()


class GateSerializer(serializers.Serializer):
    can_advance = serializers.BooleanField()
    step = serializers.CharField(allow_blank=True)
    stage = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    blockers = BlockerSerializer(many=True)
    version = serializers.IntegerField(help_text="Goes up when the answer changes (the ETag).")
    computed_at = serializers.DateTimeField(help_text="When the gate was last evaluated.")


class GateQuerySerializer(serializers.Serializer):
    wait = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="Long poll: seconds to wait for the verdict to change.",
    )

    def validate_wait(self, value: int) -> int:
        longest = settings.GATE_LONG_POLL_MAX_SECONDS
        if value > longest:
            raise serializers.ValidationError(f"Wait at most {longest} seconds.")
        return value


class TrafficSerializer(serializers.Serializer):
    percentage = serializers.IntegerField()
    status = serializers.CharField()
    stage = serializers.CharField(allow_null=True)
    environment = serializers.CharField(
        required=False, help_text="Only with ?environment=: the environment answered for."
    )


class EnvironmentQuerySerializer(serializers.Serializer):
    environment = serializers.SlugField(
        required=False,
        help_text="An environment's slug: the answer there (default: the current stage's).",
    )


class BucketQuerySerializer(EnvironmentQuerySerializer):
    unit = serializers.CharField(max_length=200)


class BucketSerializer(serializers.Serializer):
    variant = serializers.ChoiceField(choices=["treatment", "control"])
    percentage = serializers.IntegerField()
    unit = serializers.CharField()


class StaleJobSerializer(serializers.Serializer):
    job = serializers.CharField(help_text="The job's name, as in the admin's Job runs.")
    entry = serializers.CharField(help_text="The beat entry that runs it.")
    every_seconds = serializers.IntegerField()
    last_run = serializers.DateTimeField(allow_null=True, help_text="When its last run finished.")
    outcome = serializers.CharField(allow_null=True, help_text="ok, items_failed or crashed.")
    reason = serializers.CharField()


class JobsHealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "stale", "unknown"])
    stale = StaleJobSerializer(many=True)


class HealthSerializer(serializers.Serializer):
    status = serializers.CharField()
    database = serializers.CharField()
    broker = serializers.CharField()
    jobs = JobsHealthSerializer(
        help_text="Periodic jobs not run for two of their intervals, never run, or last crashed."
    )


def gate_payload(verdict: Any) -> dict[str, Any]:
    """The gate endpoint's document for a verdict (the same one the kept verdict stores)."""
    return verdicts.document(verdict)
