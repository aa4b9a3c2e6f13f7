"""API representations of sign-offs, what a gate still needs, and an artifact change."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.releases.models import sha_validator
from apps.signoffs.choices import Decision
from apps.signoffs.models import SignOff


class SignOffSerializer(serializers.ModelSerializer):
    signer = serializers.CharField(source="signer.get_username", read_only=True)
    gate = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()

    class Meta:
        model = SignOff
        fields = [
            "id",
            "signer",
            "decision",
            "comment",
            "gate",
            "commit_sha",
            "created_at",
            "state",
            "withdrawn_at",
            "lapsed_at",
            "lapse_reason",
        ]

    def get_gate(self, obj: SignOff) -> str:
        return f"leaving stage {obj.stage.name}" if obj.stage else "the start"

    def get_state(self, obj: SignOff) -> str:
        """standing, withdrawn, lapsed, expired, or earlier (for a gate already left)."""
        status = self.context.get("status")
        state = obj.state()
        if state != "standing":
            return state
        if status is None or obj.gate_key != status.gate.key:
            return "earlier"
        return "standing" if obj in status.assessment.standing else "expired"


class RuleSerializer(serializers.Serializer):
    quorum = serializers.CharField()
    groups = serializers.ListField(child=serializers.CharField())
    approvals_needed = serializers.IntegerField()
    valid_for_seconds = serializers.IntegerField(allow_null=True)
    author_may_approve = serializers.BooleanField()
    description = serializers.CharField()


class NoGoSerializer(serializers.Serializer):
    signer = serializers.CharField()
    comment = serializers.CharField()
    at = serializers.DateTimeField()


class NeededSerializer(serializers.Serializer):
    groups = serializers.ListField(child=serializers.CharField())
    approvals = serializers.IntegerField()
    text = serializers.CharField()


class SignOffsSerializer(serializers.Serializer):
    """The sign-offs of a release and what its current gate still needs."""

    release = serializers.IntegerField()
    gate = serializers.CharField(allow_null=True)
    stage = serializers.CharField(allow_null=True)
    rule = RuleSerializer(allow_null=True)
    met = serializers.BooleanField()
    quorum_reached = serializers.BooleanField()
    still_needed = NeededSerializer(allow_null=True)
    no_gos = NoGoSerializer(many=True)
    signoffs = SignOffSerializer(many=True)


def signoffs_payload(release: Any, status: Any, history: list[SignOff]) -> dict[str, Any]:
    """The document GET /releases/{id}/signoffs/ answers."""
    signoffs = SignOffSerializer(history, many=True, context={"status": status}).data
    if status is None:
        return {
            "release": release.pk,
            "gate": None,
            "stage": None,
            "rule": None,
            "met": True,
            "quorum_reached": True,
            "still_needed": None,
            "no_gos": [],
            "signoffs": signoffs,
        }
    rule, assessment = status.rule, status.assessment
    return {
        "release": release.pk,
        "gate": status.gate.label,
        "stage": status.gate.stage.name if status.gate.stage else None,
        "rule": {
            "quorum": rule.quorum,
            "groups": [g.name for g in assessment.groups],
            "approvals_needed": rule.approvals_needed,
            "valid_for_seconds": int(rule.valid_for.total_seconds()) if rule.valid_for else None,
            "author_may_approve": rule.author_may_approve,
            "description": rule.describe(),
        },
        "met": assessment.met,
        "quorum_reached": assessment.quorum_reached,
        "still_needed": None
        if assessment.quorum_reached
        else {
            "groups": [g.name for g in assessment.missing_groups],
            "approvals": assessment.approvals_missing,
            "text": assessment.still_needed(),
        },
        "no_gos": [
            {"signer": s.signer.get_username(), "comment": s.comment, "at": s.created_at}
            for s in assessment.no_gos
        ],
        "signoffs": signoffs,
    }


class SignInputSerializer(serializers.Serializer):
    """A person's go or no-go (session-authenticated people only; tokens cannot sign)."""

    decision = serializers.ChoiceField(choices=Decision.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class ArtifactSerializer(serializers.Serializer):
    """CI points the release at a new build: every sign-off on the old one lapses."""

    commit_sha = serializers.CharField(max_length=64, validators=[sha_validator])
    commit_time = serializers.DateTimeField(required=False, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class LapsedSerializer(serializers.Serializer):
    signer = serializers.CharField()
    decision = serializers.CharField()


class ArtifactResultSerializer(serializers.Serializer):
    release = serializers.IntegerField()
    commit_sha = serializers.CharField()
    lapsed = LapsedSerializer(many=True)
