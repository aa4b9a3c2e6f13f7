"""The demo's people and the things around its releases, so every page has something real on it:
a release manager, two approvers, a viewer and the releases' authors; a pre-deployment checklist
and a go/no-go checklist and sign-off rule on the progressive plan; an escalation policy routing
every demo service; one open incident; a weekly report subscription and last week's report.

Called by load_demo (plan-level things before the releases are registered, so the releases copy
them; the rest after). Idempotent: everything is keyed by name, username or slug.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.checklists.choices import ChecklistKind
from apps.checklists.drafts import DetectedChecklist, DetectedItem, DetectedSection
from apps.checklists.models import Checklist, ChecklistTemplate, PlanChecklist
from apps.checklists.services import mark_done, report_check, save_template_version
from apps.core.actors import Actor
from apps.incidents.lifecycle import open_incident
from apps.incidents.models import (
    Contact,
    EscalationLevel,
    EscalationPolicy,
    Incident,
    IncidentRouting,
)
from apps.releases.choices import Severity
from apps.releases.models import Release, RolloutPlan, Service
from apps.releases.roles import APPROVERS, RELEASE_MANAGERS, VIEWERS
from apps.reports.choices import Frequency
from apps.reports.models import ReportSubscription
from apps.reports.schedule import last_complete_period
from apps.reports.services import obtain_report
from apps.signoffs.models import SignOffRule


@dataclass(frozen=True)
class Person:
    username: str
    name: str
    group: str
    email: str


PEOPLE = [
    Person("rita", "Rita Release-Manager", RELEASE_MANAGERS, "rita@example.com"),
    Person("alice", "Alice Approver", APPROVERS, "alice@example.com"),
    Person("ahmed", "Ahmed Approver", APPROVERS, "ahmed@example.com"),
    Person("victor", "Victor Viewer", VIEWERS, "victor@example.com"),
]
# The demo releases' authors: engineers who may look, not sign (an author matching no user holds
# a gate that bars authors from approving). They have no password: nobody signs in as them.
AUTHORS = ["maria.k", "jonas.b", "li.wei", "sam.o"]

PRE_DEPLOYMENT = (
    "Pre-deployment checklist",
    {
        "Code and tests": [
            "Code review completed and approved",
            ("All unit and integration tests pass", "tests"),
            ("Security scan clean", "security-scan"),
        ],
        "Readiness": [
            "Rollback plan documented and tested in staging",
            "On-call engineer notified and available",
            "Monitoring dashboards ready",
        ],
    },
)
GO_NO_GO = (
    "Go/no-go: leaving 25 %",
    {
        "Metrics (last 24 h)": [
            "Error rate below 1 % and not climbing",
            "p95 latency under 2 s",
            "Quality score at or above 4.0",
        ],
        "Operations": [
            "No open SEV1 or SEV2 incident on the service",
            "Support tickets at their normal level",
            "Stakeholders informed of the next step",
        ],
    },
)
GATED_STAGE = "25%"  # the progressive plan's stage where 2.4.0 waits for its go/no-go


def people(password: str) -> dict[str, Any]:
    """The demo's accounts, each in its role's group, with `password` (printed by load_demo)."""
    users = {}
    model = get_user_model()
    for person in PEOPLE:
        first, _, last = person.name.partition(" ")
        user, _ = model.objects.get_or_create(username=person.username)
        user.email, user.first_name, user.last_name = person.email, first, last
        user.is_active = True
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get(name=person.group)])
        users[person.username] = user
    for username in AUTHORS:
        user, created = model.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com"}
        )
        if created:
            user.set_unusable_password()
            user.save()
            user.groups.set([Group.objects.get(name=VIEWERS)])
    return users


def _template(name: str, kind: str, sections: dict[str, list[Any]]) -> ChecklistTemplate:
    current = ChecklistTemplate.objects.filter(name=name, is_current=True).first()
    if current is not None:
        return current
    detected = DetectedChecklist(
        name=name,
        heading=name,
        kind=kind,
        sections=[
            DetectedSection(
                section,
                [
                    DetectedItem(spec) if isinstance(spec, str) else DetectedItem(*spec)
                    for spec in specs
                ],
            )
            for section, specs in sections.items()
        ],
    )
    return save_template_version(detected, actor=Actor.system("demo")).template


def plan_extras(plans: dict[str, RolloutPlan]) -> None:
    """Checklists and a sign-off rule on the progressive plan (before releases copy them)."""
    plan = plans["progressive"]
    pre = _template(PRE_DEPLOYMENT[0], ChecklistKind.PRE_DEPLOYMENT, PRE_DEPLOYMENT[1])
    exit_ = _template(GO_NO_GO[0], ChecklistKind.STAGE_EXIT, GO_NO_GO[1])
    stage = plan.stages.get(name=GATED_STAGE)
    PlanChecklist.objects.get_or_create(plan=plan, template=pre, stage_template=None)
    PlanChecklist.objects.get_or_create(plan=plan, template=exit_, stage_template=stage)
    rule, _ = SignOffRule.objects.get_or_create(
        plan=plan, stage_template=stage, defaults={"quorum": "count", "approvals_needed": 2}
    )
    rule.groups.set([Group.objects.get(name=APPROVERS)])


def ready_to_start(release: Release, actor: Actor) -> None:
    """What the team did before starting a demo release: the pre-deployment checklist's manual
    items ticked (its CI items reported by CI, with evidence)."""
    for checklist in Checklist.objects.filter(release=release, kind=ChecklistKind.PRE_DEPLOYMENT):
        mark_done(checklist.items.all(), actor=actor, comment="Demo: done before the start.")
        for item in checklist.items.exclude(key=""):
            report_check(
                release,
                key=item.key,
                passed=True,
                actor=Actor.system("ci"),
                url="https://ci.example.com/runs/demo",
            )


def service_extras(services: dict[str, Service]) -> None:
    """An escalation policy from the runbook's table, routing every demo service."""
    contacts = {
        key: Contact.objects.get_or_create(email=email, defaults={"name": name, "role": role})[0]
        for key, name, role, email in [
            ("oncall", "On-call engineer", "Engineering on-call", "oncall@example.com"),
            ("lead", "Team lead", "Backend team lead", "lead@example.com"),
            ("cto", "CTO", "CTO (critical only)", "cto@example.com"),
        ]
    }
    policy, _ = EscalationPolicy.objects.get_or_create(
        name="Release incidents",
        defaults={
            "description": "On-call at once, the team lead after 15 minutes, the CTO "
            "after 30 for critical incidents."
        },
    )
    for position, after, contact, min_severity in [
        (1, 0, "oncall", ""),
        (2, 15, "lead", ""),
        (3, 30, "cto", Severity.SEV1),
    ]:
        level, _ = EscalationLevel.objects.get_or_create(
            policy=policy,
            position=position,
            defaults={"after_minutes": after, "min_severity": min_severity},
        )
        level.contacts.set([contacts[contact]])
    for service in services.values():
        IncidentRouting.objects.update_or_create(service=service, defaults={"policy": policy})


def incident(services: dict[str, Service]) -> Incident:
    """One open incident: the billing release the runbook rolled back for its latency."""
    service = services["billing-api"]
    title = "Checkout p99 latency doubled for beta users"
    existing = Incident.objects.filter(service=service, title=title).first()
    if existing is not None:
        return existing
    release = Release.objects.filter(service=service, version="5.1.0").first()
    return open_incident(
        service=service,
        title=title,
        actor=Actor.system("demo"),
        severity=Severity.SEV2,
        release=release,
        description="Rolled back at 10 %; still investigating the payment provider's latency.",
    )


def report() -> None:
    """A weekly report for the stakeholders' list, and last week's report already generated."""
    ReportSubscription.objects.get_or_create(
        email="stakeholders@example.com",
        frequency=Frequency.WEEKLY,
        service=None,
        defaults={"user": None},
    )
    period = last_complete_period(Frequency.WEEKLY, timezone.now(), "UTC")
    obtain_report(None, period)
