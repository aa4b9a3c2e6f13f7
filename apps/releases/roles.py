"""The three roles and what each may do; the data migration and the tests read this map."""

RELEASE_MANAGERS = "Release managers"
APPROVERS = "Approvers"
VIEWERS = "Viewers"

_VIEW_ALL = [
    "releases.view_service",
    "releases.view_environment",
    "releases.view_rolloutplan",
    "releases.view_stagetemplate",
    "releases.view_release",
    "releases.view_stage",
    "releases.view_event",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    RELEASE_MANAGERS: _VIEW_ALL
    + [
        f"releases.{verb}_{model}"
        for model in ("service", "environment", "rolloutplan", "stagetemplate", "release")
        for verb in ("add", "change")
    ]
    + [
        "releases.delete_stagetemplate",
        "releases.operate_release",
        "releases.force_advance",
        "api.view_apitoken",
        "api.add_apitoken",
        "api.change_apitoken",
    ],
    APPROVERS: list(_VIEW_ALL),
    VIEWERS: list(_VIEW_ALL),
}

# Checklists (apps/checklists, granted by its 0002_roles migration): everyone reads them, release
# managers keep the templates and plan links, managers and approvers tick items.
CHECKLISTS_VIEW = [
    f"checklists.view_{model}"
    for model in (
        "checklisttemplate",
        "templatesection",
        "templateitem",
        "planchecklist",
        "checklist",
        "checklistitem",
        "checklistitemchange",
    )
]
CHECKLISTS_MANAGE = [
    f"checklists.{verb}_{model}"
    for model in ("checklisttemplate", "templatesection", "templateitem", "planchecklist")
    for verb in ("add", "change", "delete")
]
ROLE_PERMISSIONS[RELEASE_MANAGERS] += CHECKLISTS_VIEW + CHECKLISTS_MANAGE
ROLE_PERMISSIONS[RELEASE_MANAGERS].append("checklists.tick_checklistitem")
ROLE_PERMISSIONS[APPROVERS] += CHECKLISTS_VIEW + ["checklists.tick_checklistitem"]
ROLE_PERMISSIONS[VIEWERS] += CHECKLISTS_VIEW

# Sign-offs and freeze windows (apps/signoffs, granted by its 0002_roles migration): everyone
# reads them, release managers keep the rules and freeze windows. Signing itself is allowed by
# membership of a rule's groups, not by a permission.
SIGNOFFS_VIEW = [
    f"signoffs.view_{model}"
    for model in ("signoffrule", "releasesignoffrule", "signoff", "signoffrequest", "freezewindow")
]
SIGNOFFS_MANAGE = [
    f"signoffs.{verb}_{model}"
    for model in ("signoffrule", "freezewindow")
    for verb in ("add", "change", "delete")
]
ROLE_PERMISSIONS[RELEASE_MANAGERS] += SIGNOFFS_VIEW + SIGNOFFS_MANAGE
ROLE_PERMISSIONS[APPROVERS] += SIGNOFFS_VIEW
ROLE_PERMISSIONS[VIEWERS] += SIGNOFFS_VIEW

# Metric checks (apps/checks, granted by its 0003_roles migration): everyone reads criteria and
# check runs; release managers keep metrics, sources (SQL ones: superusers only, in the admin)
# and criteria. Samples come from CI tokens; people push them only with checks.add_sample.
CHECKS_VIEW = [
    f"checks.view_{model}"
    for model in (
        "metricdefinition",
        "metricsource",
        "metriccriterion",
        "stagecriteria",
        "sample",
        "checkrun",
        "checkresult",
        "successresolution",
    )
]
# A success decision (0008_success_roles) is made, never changed or deleted: add only.
CHECKS_MANAGE = [
    f"checks.{verb}_{model}"
    for model in ("metricdefinition", "metricsource", "metriccriterion")
    for verb in ("add", "change", "delete")
] + ["checks.change_stagecriteria", "checks.add_successresolution"]
ROLE_PERMISSIONS[RELEASE_MANAGERS] += CHECKS_VIEW + CHECKS_MANAGE
ROLE_PERMISSIONS[APPROVERS] += CHECKS_VIEW
ROLE_PERMISSIONS[VIEWERS] += CHECKS_VIEW

# Incidents and on-call (apps/incidents, granted by its 0002_roles migration): everyone reads
# incidents, contacts, rotations and policies; release managers keep contacts, rotations,
# policies, service routing and routing rules, open incidents and re-send deliveries; managers
# and approvers respond (acknowledge, mitigate, resolve, reopen). A person paged for an incident
# may respond to it without the permission.
INCIDENTS_VIEW = [
    f"incidents.view_{model}"
    for model in (
        "incident",
        "incidentevent",
        "contact",
        "oncallrotation",
        "rotationmember",
        "rotationoverride",
        "escalationpolicy",
        "escalationlevel",
        "incidentrouting",
        "notificationdelivery",
        "routingrule",  # granted by incidents 0006
    )
]
INCIDENTS_MANAGE = [
    f"incidents.{verb}_{model}"
    for model in (
        "contact",
        "oncallrotation",
        "rotationmember",
        "rotationoverride",
        "escalationpolicy",
        "escalationlevel",
        "incidentrouting",
        "routingrule",  # granted by incidents 0006
    )
    for verb in ("add", "change", "delete")
] + ["incidents.add_incident", "incidents.change_incident", "incidents.change_notificationdelivery"]
ROLE_PERMISSIONS[RELEASE_MANAGERS] += INCIDENTS_VIEW + INCIDENTS_MANAGE
ROLE_PERMISSIONS[RELEASE_MANAGERS].append("incidents.respond_incident")
ROLE_PERMISSIONS[APPROVERS] += INCIDENTS_VIEW + ["incidents.respond_incident"]
ROLE_PERMISSIONS[VIEWERS] += INCIDENTS_VIEW

# Reports (apps/reports, granted by its 0002_roles migration): everyone reads the archive and who
# it went to; release managers keep the subscriptions and send reports again.
REPORTS_VIEW = [
    f"reports.view_{model}"
    for model in ("reportsubscription", "report", "reportchart", "reportdelivery")
]
REPORTS_MANAGE = [f"reports.{verb}_reportsubscription" for verb in ("add", "change", "delete")] + [
    "reports.change_reportdelivery"
]
ROLE_PERMISSIONS[RELEASE_MANAGERS] += REPORTS_VIEW + REPORTS_MANAGE
ROLE_PERMISSIONS[APPROVERS] += REPORTS_VIEW
ROLE_PERMISSIONS[VIEWERS] += REPORTS_VIEW

# Outgoing messages (apps/outbox, granted by its 0002_roles migration): release managers see
# every email waiting, sent or failed, and send failed ones again. Others do not: the list is
# of people's addresses.
OUTBOX_MANAGE = ["outbox.view_message", "outbox.resend_message"]
ROLE_PERMISSIONS[RELEASE_MANAGERS] += OUTBOX_MANAGE

# Runbook import (apps/runbooks, granted by its 0002_roles migration): release managers import
# runbooks (admin, API) and read the record of imports; everyone reads the record.
RUNBOOKS_VIEW = ["runbooks.view_runbookimport"]
RUNBOOKS_MANAGE = ["runbooks.add_runbookimport"]
ROLE_PERMISSIONS[RELEASE_MANAGERS] += RUNBOOKS_VIEW + RUNBOOKS_MANAGE
ROLE_PERMISSIONS[APPROVERS] += RUNBOOKS_VIEW
ROLE_PERMISSIONS[VIEWERS] += RUNBOOKS_VIEW


def ensure_roles() -> None:
    """Create the role groups with their permissions if they are missing (e.g. after a flush)."""
    from django.contrib.auth.models import Group, Permission

    for group_name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.add(*wanted)
