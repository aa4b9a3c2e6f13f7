"""Create the groups Release managers, Approvers and Viewers with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copy of apps/releases/roles.py as of this migration: a later change to the roles
# gets a migration of its own.
ROLE_PERMISSIONS = {
    "Approvers": [
        "releases.view_service",
        "releases.view_environment",
        "releases.view_rolloutplan",
        "releases.view_stagetemplate",
        "releases.view_release",
        "releases.view_stage",
        "releases.view_event",
    ],
    "Release managers": [
        "releases.view_service",
        "releases.view_environment",
        "releases.view_rolloutplan",
        "releases.view_stagetemplate",
        "releases.view_release",
        "releases.view_stage",
        "releases.view_event",
        "releases.add_service",
        "releases.change_service",
        "releases.add_environment",
        "releases.change_environment",
        "releases.add_rolloutplan",
        "releases.change_rolloutplan",
        "releases.add_stagetemplate",
        "releases.change_stagetemplate",
        "releases.add_release",
        "releases.change_release",
        "releases.delete_stagetemplate",
        "releases.operate_release",
        "releases.force_advance",
        "api.view_apitoken",
        "api.add_apitoken",
        "api.change_apitoken",
    ],
    "Viewers": [
        "releases.view_service",
        "releases.view_environment",
        "releases.view_rolloutplan",
        "releases.view_stagetemplate",
        "releases.view_release",
        "releases.view_stage",
        "releases.view_event",
    ],
}


def create_roles(apps, schema_editor):
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


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0001_initial"),
        ("api", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
