"""Grant the success decisions: everyone sees them, release managers make them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copy of this part of apps/releases/roles.py as of this migration.
ROLE_PERMISSIONS = {
    "Release managers": ["checks.view_successresolution", "checks.add_successresolution"],
    "Approvers": ["checks.view_successresolution"],
    "Viewers": ["checks.view_successresolution"],
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
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="checks", codename__endswith="_successresolution"
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("checks", "0007_sequential_success_criteria"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
