"""Freeze each incident's escalation timetable onto it (Incident.escalation_snapshot).

Incidents opened before this migration escalated by their policy's live levels; they are
frozen from the policy as it is at migration time, which is what they were escalating by.
Resolved ones are frozen too, so their level ("L2") still reads from a timetable; a reopen
freezes the policy again anyway.
"""

from django.db import migrations, models
from django.utils import timezone


def freeze_existing(apps, schema_editor):
    # A copy of Timetable.of / as_json (format 1) on the historical models: a migration must not
    # follow later changes to the app's code.
    Incident = apps.get_model("incidents", "Incident")
    EscalationLevel = apps.get_model("incidents", "EscalationLevel")
    frozen_at = timezone.now().isoformat()
    snapshots = {}
    for incident in Incident.objects.filter(policy__isnull=False).select_related("policy"):
        policy = incident.policy
        if policy.pk not in snapshots:
            levels = (
                EscalationLevel.objects.filter(policy=policy)
                .select_related("rotation")
                .prefetch_related("contacts")
                .order_by("after_minutes", "position", "pk")
            )
            snapshots[policy.pk] = {
                "format": 1,
                "policy": {"id": policy.pk, "name": policy.name},
                "escalate_while": policy.escalate_while,
                "repeat_times": policy.repeat_times,
                "repeat_after_minutes": policy.repeat_after_minutes,
                "frozen_at": frozen_at,
                "levels": [
                    {
                        "position": level.position,
                        "after_minutes": level.after_minutes,
                        "min_severity": level.min_severity,
                        "contacts": [
                            {"id": c.pk, "name": c.name}
                            for c in sorted(level.contacts.all(), key=lambda c: (c.name, c.pk))
                        ],
                        "rotation": (
                            {"id": level.rotation.pk, "name": level.rotation.name}
                            if level.rotation_id
                            else None
                        ),
                    }
                    for level in levels
                ],
            }
        incident.escalation_snapshot = snapshots[policy.pk]
        incident.save(update_fields=["escalation_snapshot"])


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0003_breach_fingerprint_per_release"),
    ]

    operations = [
        migrations.AddField(
            model_name="incident",
            name="escalation_snapshot",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(freeze_existing, migrations.RunPython.noop),
    ]
