"""Pages: who is on call (/oncall/), an incident, and the acknowledge / resolve links of a page.

GET only reads (mail scanners prefetch links); acknowledging, resolving and the rest are
CSRF-protected POSTs that go through the lifecycle module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from apps.core.actors import Actor
from apps.releases.models import Service

from . import lifecycle
from .escalation import policy_prefetches
from .models import Contact, EscalationPolicy, Incident, OnCallRotation, RoutingRule

# The plain sign-in page (stakeholders on call may have no admin access).
LOGIN_URL = reverse_lazy("signoffs:login")
VIEW_PERM = "incidents.view_incident"
CONTACTS_PERM = "incidents.view_contact"
NO_ONCALL = (
    "Seeing who is on call needs the Viewers, Approvers or Release managers role. Ask a release "
    "manager if you should have one."
)

ACTIONS = {
    "acknowledge": ("Acknowledge", "Acknowledged"),
    "mitigate": ("Mark mitigated", "Marked mitigated"),
    "resolve": ("Resolve", "Resolved"),
    "reopen": ("Reopen", "Reopened"),
}


def _local(when: datetime | None, rotation: OnCallRotation) -> str:
    if when is None:
        return ""
    return f"{when.astimezone(rotation.zone):%a %Y-%m-%d %H:%M %Z}"


@dataclass
class OnCallNow:
    """A rotation as the on-call page shows it."""

    rotation: OnCallRotation
    now: Contact | None
    until: str
    next: Contact | None
    override: bool


def _on_call(rotation: OnCallRotation, now: datetime) -> OnCallNow:
    handoffs = rotation.handoffs(now, count=1)
    upcoming = handoffs[0] if handoffs else None
    return OnCallNow(
        rotation=rotation,
        now=rotation.on_call_at(now),
        until=_local(upcoming.at, rotation) if upcoming else "",
        next=upcoming.contact if upcoming else None,
        override=rotation.override_at(now) is not None,
    )


def _rows(policy: EscalationPolicy, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for level in policy.ordered_levels():
        rows.append(
            {
                "level": level,
                "contacts": [c for c in level.contacts.all() if c.active],
                "on_call": _on_call(level.rotation, now) if level.rotation else None,
            }
        )
    return rows


@login_required(login_url=LOGIN_URL)
@require_GET
def oncall(request: HttpRequest) -> HttpResponse:
    """The routing rules, then each service: who is on call now and next, its escalation table,
    and its open incidents with what chose the policy each pages."""
    if not request.user.has_perm(CONTACTS_PERM):
        # Contacts' addresses and phones and open incidents' titles: for the roles only. Someone
        # paged without a role reaches their incident through the emailed link instead.
        return render(request, "forbidden.html", {"message": NO_ONCALL}, status=403)
    now = timezone.now()
    services = (
        Service.objects.select_related("incident_routing__policy")
        .prefetch_related(
            *policy_prefetches("incident_routing__policy__", now),
            Prefetch(
                "incidents",
                queryset=Incident.objects.unresolved()
                .select_related("policy")
                .order_by("severity", "opened_at"),
                to_attr="open_incidents",
            ),
        )
        .order_by("name")
    )
    rules = list(
        RoutingRule.objects.select_related("service", "policy")
        .prefetch_related(*policy_prefetches("policy__", now))
        .order_by("position", "pk")
    )
    cards = []
    for service in services:
        routing = getattr(service, "incident_routing", None)
        policy = routing.policy if routing else None
        rows = _rows(policy, now) if policy else []
        seen: dict[int, OnCallNow] = {}
        for row in rows:
            if row["on_call"] is not None:
                seen.setdefault(row["on_call"].rotation.pk, row["on_call"])
        cards.append(
            {
                "service": service,
                "policy": policy,
                "webhook": bool(routing and routing.webhook_url),
                "rows": rows,
                "rotations": list(seen.values()),
                "incidents": service.open_incidents,
            }
        )
    # Each policy a rule may choose, with its table once, for the incidents it routes.
    routed: dict[int, dict[str, Any]] = {}
    for rule in rules:
        if rule.enabled and rule.policy_id not in routed:
            routed[rule.policy_id] = {"policy": rule.policy, "rows": _rows(rule.policy, now)}
    context = {
        "cards": cards,
        "now": now,
        "rules": [{"rule": rule, "when": rule.conditions_text()} for rule in rules],
        "routed_policies": list(routed.values()),
    }
    return render(request, "incidents/oncall.html", context)


def _incident(pk: int) -> Incident:
    return get_object_or_404(
        Incident.objects.select_related("service", "release__environment", "policy"), pk=pk
    )


def _may_view(request: HttpRequest, incident: Incident) -> bool:
    return request.user.has_perm(VIEW_PERM) or lifecycle.was_paged(request.user, incident)


def _forbidden(request: HttpRequest, incident: Incident) -> HttpResponse:
    return render(request, "incidents/forbidden.html", {"incident": incident}, status=403)


@login_required(login_url=LOGIN_URL)
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An incident: its facts, what the reader may do, its timeline and its notifications."""
    incident = _incident(pk)
    if not _may_view(request, incident):
        return _forbidden(request, incident)
    actor = Actor.for_user(request.user)
    may_respond = lifecycle.may_respond(actor, incident)
    context = {
        "incident": incident,
        "actions": [(action, ACTIONS[action][0]) for action in lifecycle.allowed_actions(incident)]
        if may_respond
        else [],
        "timeline": incident.events.timeline(),
        "deliveries": incident.deliveries.select_related("contact").order_by("created_at", "pk"),
    }
    return render(request, "incidents/detail.html", context)


@login_required(login_url=LOGIN_URL)
@require_http_methods(["GET", "POST"])
def act(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """GET asks to confirm (a link in an email must not act by itself); POST acts."""
    incident = _incident(pk)
    if not _may_view(request, incident):
        return _forbidden(request, incident)
    actor = Actor.for_user(request.user)
    label, done = ACTIONS[action]
    context: dict[str, Any] = {
        "incident": incident,
        "action": action,
        "label": label,
        "allowed": action in lifecycle.allowed_actions(incident),
        "may_respond": lifecycle.may_respond(actor, incident),
    }
    if request.method == "POST":
        reason = request.POST.get("reason", "").strip()[:4000]
        try:
            getattr(lifecycle, action)(incident, actor=actor, reason=reason)
        except lifecycle.IncidentForbidden as exc:
            return render(
                request, "incidents/confirm.html", context | {"error": exc.message}, status=403
            )
        except lifecycle.IncidentError as exc:
            return render(
                request, "incidents/confirm.html", context | {"error": exc.message}, status=409
            )
        messages.success(request, f"{done} incident #{incident.pk}.")
        return HttpResponseRedirect(reverse("incidents:detail", args=[incident.pk]))
    if not context["allowed"]:
        context["notice"] = lifecycle.describe_status(incident)
    return render(request, "incidents/confirm.html", context)
