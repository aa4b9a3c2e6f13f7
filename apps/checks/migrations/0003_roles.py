"""Grant the metric-check permissions to Release managers, Approvers and Viewers."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copy of the metric-check part of apps/releases/roles.py as of this migration: a later
# change to the roles gets a migration of its own.
ROLE_PERMISSIONS = {
    "Release managers": [
        "checks.view_metricdefinition",
        "checks.view_metricsource",
        "checks.view_metriccriterion",
        "checks.view_stagecriteria",
        "checks.view_sample",
        "checks.view_checkrun",
        "checks.view_checkresult",
        "checks.add_metricdefinition",
        "checks.change_metricdefinition",
        "checks.delete_metricdefinition",
        "checks.add_metricsource",
        "checks.change_metricsource",
        "checks.delete_metricsource",
        "checks.add_metriccriterion",
        "checks.change_metriccriterion",
        "checks.delete_metriccriterion",
        "checks.change_stagecriteria",
    ],
    "Approvers": [
        "checks.view_metricdefinition",
        "checks.view_metricsource",
        "checks.view_metriccriterion",
        "checks.view_stagecriteria",
        "checks.view_sample",
        "checks.view_checkrun",
        "checks.view_checkresult",
    ],
    "Viewers": [
        "checks.view_metricdefinition",
        "checks.view_metricsource",
        "checks.view_metriccriterion",
        "checks.view_stagecriteria",
        "checks.view_sample",
        "checks.view_checkrun",
        "checks.view_checkresult",
    ],
}


def grant(apps, schema_editor):
    # Permissions are normally made after all migrations ran; make them now so groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=ROLE_PERMISSIONS):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="checks"))


class Migration(migrations.Migration):
    dependencies = [
        ("checks", "0002_stage_criteria"),
        ("releases", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
