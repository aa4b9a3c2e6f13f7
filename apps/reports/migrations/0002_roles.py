"""Grant the report permissions to Release managers, Approvers and Viewers."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

_VIEW = [
    "reports.view_reportsubscription",
    "reports.view_report",
    "reports.view_reportchart",
    "reports.view_reportdelivery",
]

# Frozen copy of the reports part of apps/releases/roles.py as of this migration: a later change
# to the roles gets a migration of its own.
ROLE_PERMISSIONS = {
    "Release managers": _VIEW
    + [
        "reports.add_reportsubscription",
        "reports.change_reportsubscription",
        "reports.delete_reportsubscription",
        "reports.change_reportdelivery",
    ],
    "Approvers": list(_VIEW),
    "Viewers": list(_VIEW),
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
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="reports"))


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0001_initial"),
        ("releases", "0002_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
