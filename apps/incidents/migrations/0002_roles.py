"""Grant the incident and on-call permissions to Release managers, Approvers and Viewers."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copy of the incidents part of apps/releases/roles.py as of this migration: a later
# change to the roles gets a migration of its own.
ROLE_PERMISSIONS = {
    "Release managers": [
        "incidents.view_incident",
        "incidents.view_incidentevent",
        "incidents.view_contact",
        "incidents.view_oncallrotation",
        "incidents.view_rotationmember",
        "incidents.view_rotationoverride",
        "incidents.view_escalationpolicy",
        "incidents.view_escalationlevel",
        "incidents.view_incidentrouting",
        "incidents.view_notificationdelivery",
        "incidents.add_contact",
        "incidents.change_contact",
        "incidents.delete_contact",
        "incidents.add_oncallrotation",
        "incidents.change_oncallrotation",
        "incidents.delete_oncallrotation",
        "incidents.add_rotationmember",
        "incidents.change_rotationmember",
        "incidents.delete_rotationmember",
        "incidents.add_rotationoverride",
        "incidents.change_rotationoverride",
        "incidents.delete_rotationoverride",
        "incidents.add_escalationpolicy",
        "incidents.change_escalationpolicy",
        "incidents.delete_escalationpolicy",
        "incidents.add_escalationlevel",
        "incidents.change_escalationlevel",
        "incidents.delete_escalationlevel",
        "incidents.add_incidentrouting",
        "incidents.change_incidentrouting",
        "incidents.delete_incidentrouting",
        "incidents.add_incident",
        "incidents.change_incident",
        "incidents.change_notificationdelivery",
        "incidents.respond_incident",
    ],
    "Approvers": [
        "incidents.view_incident",
        "incidents.view_incidentevent",
        "incidents.view_contact",
        "incidents.view_oncallrotation",
        "incidents.view_rotationmember",
        "incidents.view_rotationoverride",
        "incidents.view_escalationpolicy",
        "incidents.view_escalationlevel",
        "incidents.view_incidentrouting",
        "incidents.view_notificationdelivery",
        "incidents.respond_incident",
    ],
    "Viewers": [
        "incidents.view_incident",
        "incidents.view_incidentevent",
        "incidents.view_contact",
        "incidents.view_oncallrotation",
        "incidents.view_rotationmember",
        "incidents.view_rotationoverride",
        "incidents.view_escalationpolicy",
        "incidents.view_escalationlevel",
        "incidents.view_incidentrouting",
        "incidents.view_notificationdelivery",
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
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="incidents"))


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0001_initial"),
        ("releases", "0002_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
