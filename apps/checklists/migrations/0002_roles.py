"""Grant the checklist permissions to Release managers, Approvers and Viewers."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copy of the checklist part of apps/releases/roles.py as of this migration: a later
# change to the roles gets a migration of its own.
ROLE_PERMISSIONS = {
    "Approvers": [
        "checklists.view_checklisttemplate",
        "checklists.view_templatesection",
        "checklists.view_templateitem",
        "checklists.view_planchecklist",
        "checklists.view_checklist",
        "checklists.view_checklistitem",
        "checklists.view_checklistitemchange",
        "checklists.tick_checklistitem",
    ],
    "Release managers": [
        "checklists.view_checklisttemplate",
        "checklists.view_templatesection",
        "checklists.view_templateitem",
        "checklists.view_planchecklist",
        "checklists.view_checklist",
        "checklists.view_checklistitem",
        "checklists.view_checklistitemchange",
        "checklists.add_checklisttemplate",
        "checklists.change_checklisttemplate",
        "checklists.delete_checklisttemplate",
        "checklists.add_templatesection",
        "checklists.change_templatesection",
        "checklists.delete_templatesection",
        "checklists.add_templateitem",
        "checklists.change_templateitem",
        "checklists.delete_templateitem",
        "checklists.add_planchecklist",
        "checklists.change_planchecklist",
        "checklists.delete_planchecklist",
        "checklists.tick_checklistitem",
    ],
    "Viewers": [
        "checklists.view_checklisttemplate",
        "checklists.view_templatesection",
        "checklists.view_templateitem",
        "checklists.view_planchecklist",
        "checklists.view_checklist",
        "checklists.view_checklistitem",
        "checklists.view_checklistitemchange",
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
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="checklists"))


class Migration(migrations.Migration):
    dependencies = [
        ("checklists", "0001_initial"),
        ("releases", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
