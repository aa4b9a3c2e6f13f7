"""Routing rules choose an incident's policy; each incident says what chose its policy.

Incidents opened before took their service's policy (or none): they are marked so.
"""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


def mark_existing(apps, schema_editor):
    Incident = apps.get_model("incidents", "Incident")
    Incident.objects.filter(policy__isnull=True).update(
        routed_by="none", routing_note="No policy: opened before routing rules existed."
    )
    Incident.objects.filter(policy__isnull=False).update(
        routed_by="service", routing_note="The service's policy (opened before routing rules)."
    )


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0004_escalation_snapshot"),
        ("releases", "0005_signoff_event_verbs"),
    ]

    operations = [
        migrations.AddField(
            model_name="incident",
            name="routed_by",
            field=models.CharField(
                choices=[
                    ("rule", "A routing rule"),
                    ("service", "The service's policy"),
                    ("named", "Named when opened"),
                    ("none", "Nothing: no rule matched and the service has no policy"),
                ],
                default="service",
                editable=False,
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="incident",
            name="routing_note",
            field=models.CharField(blank=True, editable=False, max_length=500),
        ),
        migrations.AlterField(
            model_name="incident",
            name="policy",
            field=models.ForeignKey(
                blank=True,
                help_text="Chosen when the incident opened: named by hand, by the first routing rule that matched, or the service's policy.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="incidents",
                to="incidents.escalationpolicy",
            ),
        ),
        migrations.CreateModel(
            name="RoutingRule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "position",
                    models.PositiveIntegerField(
                        default=10,
                        help_text="Rules are tried from the lowest position up; the first that matches wins.",
                        validators=[django.core.validators.MinValueValidator(1)],
                    ),
                ),
                (
                    "name",
                    models.CharField(
                        help_text='e.g. "security → security on-call"', max_length=120, unique=True
                    ),
                ),
                ("enabled", models.BooleanField(default=True)),
                (
                    "source",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("manual", "Opened by hand"),
                            ("breach", "Metric criterion breach"),
                            ("alertmanager", "Alertmanager"),
                        ],
                        help_text="Only incidents opened this way (empty: any).",
                        max_length=20,
                    ),
                ),
                (
                    "min_severity",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("sev1", "SEV1 (critical)"),
                            ("sev2", "SEV2 (high)"),
                            ("sev3", "SEV3 (moderate)"),
                            ("sev4", "SEV4 (info)"),
                        ],
                        help_text="Only incidents at least this severe (empty: any).",
                        max_length=4,
                    ),
                ),
                (
                    "matchers",
                    models.TextField(
                        blank=True,
                        help_text='Label matchers, one per line, as in Alertmanager: team="security", alertname=~"Cost.*", env!="staging". All must hold. A metric breach has the labels metric, criterion (its id), environment and plan.',
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "policy",
                    models.ForeignKey(
                        help_text="The policy matching incidents escalate by.",
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="routing_rules",
                        to="incidents.escalationpolicy",
                    ),
                ),
                (
                    "service",
                    models.ForeignKey(
                        blank=True,
                        help_text="Only this service's incidents (empty: every service).",
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="routing_rules",
                        to="releases.service",
                    ),
                ),
            ],
            options={
                "ordering": ["position", "id"],
            },
        ),
        migrations.AddField(
            model_name="incident",
            name="routing_rule",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="incidents",
                to="incidents.routingrule",
            ),
        ),
        migrations.RunPython(mark_existing, migrations.RunPython.noop),
    ]
