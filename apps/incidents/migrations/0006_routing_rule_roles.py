"""Grant the routing rules' permissions: everyone reads them, release managers keep them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copy of the routing-rule part of apps/releases/roles.py as of this migration.
ROLE_PERMISSIONS = {
    "Release managers": [
        "incidents.view_routingrule",
        "incidents.add_routingrule",
        "incidents.change_routingrule",
        "incidents.delete_routingrule",
    ],
    "Approvers": ["incidents.view_routingrule"],
    "Viewers": ["incidents.view_routingrule"],
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
    rules = Permission.objects.filter(
        content_type__app_label="incidents", content_type__model="routingrule"
    )
    for group in Group.objects.filter(name__in=ROLE_PERMISSIONS):
        group.permissions.remove(*rules)


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0005_routing_rules"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
