"""API shapes for a release's checklists and for CI check reports."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.checklists.models import (
    KEY_MAX_LENGTH,
    Checklist,
    ChecklistItem,
    validate_evidence_url,
)

from .serializers import GateSerializer


class CheckReportSerializer(serializers.Serializer):
    """What CI sends: the automated item's key (or an item id), whether it passed, evidence."""

    key = serializers.CharField(max_length=KEY_MAX_LENGTH, required=False)
    item = serializers.IntegerField(required=False, help_text="An item id, instead of a key.")
    passed = serializers.BooleanField()
    detail = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    url = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=500,
        validators=[validate_evidence_url],
        help_text="A link to the evidence (the CI run).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("key" in attrs) == ("item" in attrs):
            raise serializers.ValidationError(
                {"key": "Send the automated item's key (e.g. 'tests'), or an item id as 'item'."}
            )
        return attrs


class ItemSerializer(serializers.ModelSerializer):
    by = serializers.CharField(source="actor_name", read_only=True)

    class Meta:
        model = ChecklistItem
        fields = [
            "id",
            "section",
            "text",
            "required",
            "key",
            "state",
            "by",
            "changed_at",
            "comment",
            "evidence_url",
        ]


class ChecklistItemSerializer(ItemSerializer):
    """An item with the name of its checklist, as a report answers it."""

    checklist = serializers.CharField(source="checklist.name", read_only=True)

    class Meta(ItemSerializer.Meta):
        fields = ["id", "checklist", *ItemSerializer.Meta.fields[1:]]


class CheckReportResultSerializer(serializers.Serializer):
    key = serializers.CharField(allow_blank=True)
    passed = serializers.BooleanField()
    items = ChecklistItemSerializer(many=True)
    gate = GateSerializer()


class ChecklistSerializer(serializers.ModelSerializer):
    # allow_null: pre- and post-deployment checklists belong to no stage.
    stage = serializers.CharField(
        source="stage.name", default=None, read_only=True, allow_null=True
    )
    done = serializers.IntegerField(source="item_done", read_only=True)
    total = serializers.IntegerField(source="item_total", read_only=True)
    required_open = serializers.IntegerField(read_only=True)
    items = ItemSerializer(many=True, read_only=True)

    class Meta:
        model = Checklist
        fields = [
            "id",
            "name",
            "kind",
            "stage",
            "template_version",
            "opened_at",
            "done",
            "total",
            "required_open",
            "items",
        ]
