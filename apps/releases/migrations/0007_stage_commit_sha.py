from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def stamp_entered_stages(apps, schema_editor):
    """A stage entered before stages kept their commit ran the release's commit (the only one
    it is known to have had): a running release is not held at its next environment for it."""
    Stage = apps.get_model("releases", "Stage")
    Release = apps.get_model("releases", "Release")
    Stage.objects.filter(entered_at__isnull=False).update(
        commit_sha=Subquery(
            Release.objects.filter(pk=OuterRef("release_id")).values("commit_sha")[:1]
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0006_stage_environment"),
    ]

    operations = [
        migrations.AddField(
            model_name="stage",
            name="commit_sha",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(stamp_entered_stages, migrations.RunPython.noop),
    ]
