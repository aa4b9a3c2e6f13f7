"""Grant release managers the outgoing messages' list and its "send again" action."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copy of the outbox part of apps/releases/roles.py as of this migration.
ROLE_PERMISSIONS = {"Release managers": ["outbox.view_message", "outbox.resend_message"]}


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
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="outbox"))


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0001_initial"),
        ("releases", "0002_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
