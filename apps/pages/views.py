"""The pages: thin views over the gate, the transitions module and the feature apps' services.

GET only reads. Every POST is CSRF-protected (Django's middleware), checks the person's permission
before anything else (403 with the reason), and hands the change to the domain function that owns
it; a refusal is shown on the release page in words, with the HTTP status the API would give.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.checklists.models import Checklist, ChecklistItem
from apps.checklists.services import (
    TICK_PERM,
    ChecklistError,
    ChecklistForbidden,
    mark_done,
    set_item_state,
)
from apps.core.actors import Actor
from apps.core.scope import Refused, check_perm, get_for
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release
from apps.rollouts import inputs
from apps.rollouts.transitions import (
    ACTIONS,
    OPERATE_PERM,
    TransitionError,
    TransitionForbidden,
)
from apps.signoffs import services as signoffs
from apps.signoffs.choices import Decision

from . import dashboard as dashboard_data
from . import incidents, release_page

VIEW_PERM = "releases.view_release"
NO_VIEW = (
    "Your account has no role that may see releases. Ask a release manager to add you to "
    "the Viewers, Approvers or Release managers group."
)


def _forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "pages/forbidden.html", {"message": message}, status=403)


def _refusals_shown(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Show apps.core.scope's refusal on the pages' 403 page, in its words."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Refused as exc:
            return _forbidden(request, exc.message)

    return wrapped


def _release(request: HttpRequest, pk: int, perm: str | None, refusal: str = NO_VIEW) -> Release:
    """The release, if this person may see it (`perm`): the same rule as the API's."""
    actor = Actor.for_user(request.user)
    # The current stage's environment too: the page says where the traffic is (a plan may go
    # through staging before production).
    releases = Release.objects.with_related().select_related("current_stage__environment")
    return get_for(actor, releases, perm=perm, refusal=refusal, pk=pk)


def _page(
    request: HttpRequest,
    release: Release,
    *,
    status: int = 200,
    error: str = "",
    error_details: list[str] | None = None,
    form: dict[str, Any] | None = None,
) -> HttpResponse:
    context = release_page.build(
        release,
        request.user,
        range_key=request.GET.get("range", ""),
        show_all_events=request.GET.get("events") == "all",
    )
    context.update(error=error, error_details=error_details or [], form=form or {})
    context.update(_notes_in_place(request, context))
    return render(request, "pages/release.html", context, status=status)


def _notes_in_place(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """The confirmations, each shown where the person acted (under the headline for a
    transition, in the item or section ticked, in the sign-off panel), never scrolled out of
    view above the page's top. A message's extra tag says where: at-item-N, at-section-N-i,
    at-signoffs; untagged ones go under the headline."""
    notes: dict[str, list[str]] = {}
    for message in messages.get_messages(request):
        place = next((t for t in message.extra_tags.split() if t.startswith("at-")), "at-top")
        notes.setdefault(place, []).append(str(message))
    for checklist in context["checklists"]:
        for item in checklist.items.all():
            item.notes = notes.pop(f"at-item-{item.pk}", [])
        checklist.notes = notes.pop(f"at-checklist-{checklist.pk}", [])
    signoff_notes = notes.pop("at-signoffs", [])
    top = [text for texts in notes.values() for text in texts]
    return {"top_notes": top, "signoff_notes": signoff_notes}


def _fetched(request: HttpRequest) -> bool:
    """A tick sent by static/js/checklists.js: it swaps the fresh page's parts in place."""
    return request.headers.get("X-Requested-With") == "rolloutdesk"


def _refused(
    request: HttpRequest,
    release: Release,
    message: str,
    status: int,
    details: list[str] | None = None,
    form: dict[str, Any] | None = None,
) -> HttpResponse:
    if not request.user.has_perm(VIEW_PERM):
        # A stakeholder who signs without a role: the reason, never the release page they may
        # not read (someone who may not even see the sign-offs never gets this far).
        return render(
            request,
            "pages/forbidden.html",
            {"message": message, "signoff_url": reverse("signoffs:page", args=[release.pk])},
            status=status,
        )
    release.refresh_from_db()
    return _page(request, release, status=status, error=message, error_details=details, form=form)


def _back(release: Release, anchor: str = "") -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("pages:release", args=[release.pk]) + anchor)


@login_required
@require_GET
@_refusals_shown
def dashboard(request: HttpRequest) -> HttpResponse:
    """The fleet's running and paused releases (filtered, paged), what waits for me, what
    finished lately."""
    check_perm(Actor.for_user(request.user), VIEW_PERM, NO_VIEW)
    try:
        filters = dashboard_data.parse_filters(request.GET)
        context = dashboard_data.build(request.user, filters)
    except dashboard_data.BadFilter as exc:
        # A hand-edited or stale link: say what is wrong, offer the unfiltered dashboard.
        return render(request, "pages/dashboard_bad_filter.html", {"error": str(exc)}, status=400)
    return render(request, "pages/dashboard.html", context)


@login_required
@require_GET
@_refusals_shown
def release_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The release page: stages, gate, checklists, sign-offs, charts, timeline and actions."""
    return _page(request, _release(request, pk, VIEW_PERM))


def _state(release: Release) -> str:
    """What the page showed: the transitions module refuses to act on a state nobody saw."""
    return f"{release.status}:{release.current_stage_id or ''}"


def _describe(release: Release) -> str:
    text = release.get_status_display().lower()
    if release.status in ReleaseStatus.active() and release.current_stage:
        text += f" at {release.current_stage.name}"
    return f"{text}, serving {release.traffic_percentage} %"


@login_required
@require_POST
@_refusals_shown
def transition(request: HttpRequest, pk: int) -> HttpResponse:
    """Start, advance, pause, resume, roll back, abort or step back, with the reason
    apps.rollouts.inputs asks for, through transitions."""
    release = _release(request, pk, OPERATE_PERM, "Only release managers may operate releases.")
    action = request.POST.get("action", "")
    reason = request.POST.get("reason", "").strip()
    force = request.POST.get("force") == "1"
    form: dict[str, Any] = {"action": action, "reason": reason}
    if action not in ACTIONS:
        return _refused(request, release, f"Unknown action {action!r}.", 400)
    # A step back's earlier stage, by position (the page's select); absent: the previous one.
    posted_stage = request.POST.get("to_stage", "").strip()
    if posted_stage and not posted_stage.isdigit():
        return _refused(request, release, f"No stage at position {posted_stage!r}.", 400)
    stage = {"to_stage": int(posted_stage)} if posted_stage else {}
    form.update(stage)
    try:
        # Before the stale-page check: a missing reason is the form's fault, whatever changed.
        inputs.check(action, reason=reason, force=force, **stage)
    except ValidationError as exc:
        return _refused(request, release, " ".join(exc.messages), 400, form=form)
    if request.POST.get("seen", _state(release)) != _state(release):
        return _refused(
            request,
            release,
            f"The release changed while you were looking: it is now {_describe(release)}. "
            "Nothing was done; check the page again before you act.",
            409,
        )
    try:
        actor = Actor.for_user(request.user)
        release = inputs.run(release, action, actor=actor, reason=reason, force=force, **stage)
    except TransitionForbidden as exc:
        return _refused(request, release, exc.message, 403, form=form)
    except TransitionError as exc:
        details = [b.detail for b in exc.blockers]
        message = "The gate refuses: " if exc.blockers else ""
        message += exc.message if not exc.blockers else f"the release may not {action} now."
        return _refused(request, release, message, 409, details=details, form=form)
    except ValidationError as exc:
        return _refused(request, release, " ".join(exc.messages), 400, form=form)
    messages.success(request, f"Done: the release is now {_describe(release)}.")
    return _back(release, "#top")


@login_required
@require_POST
@_refusals_shown
def tick_item(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """Tick or untick a checklist item through the checklists service."""
    refusal = "Ticking checklist items needs the Approvers or Release managers role."
    release = _release(request, pk, TICK_PERM, refusal)
    item = get_object_or_404(ChecklistItem, pk=item_pk, checklist__release_id=release.pk)
    done = request.POST.get("done") == "1"
    try:
        set_item_state(
            item,
            done=done,
            actor=Actor.for_user(request.user),
            comment=request.POST.get("comment", "").strip(),
        )
    except ChecklistForbidden as exc:
        return _refused(request, release, exc.message, 403)
    except ChecklistError as exc:
        return _refused(request, release, exc.message, 409)
    except ValidationError as exc:
        return _refused(request, release, " ".join(exc.messages), 400)
    messages.success(
        request, f"{'Ticked' if done else 'Reopened'}: {item.text}", extra_tags=f"at-item-{item.pk}"
    )
    if _fetched(request):
        release.refresh_from_db()
        return _page(request, release)
    return _back(release, f"#item-{item.pk}")


@login_required
@require_POST
@_refusals_shown
def tick_section(request: HttpRequest, pk: int, checklist_pk: int) -> HttpResponse:
    """Tick every open manual item of one section of a checklist at once (all or nothing), each
    with its own history row and timeline event, as if ticked one by one."""
    refusal = "Ticking checklist items needs the Approvers or Release managers role."
    release = _release(request, pk, TICK_PERM, refusal)
    checklist = get_object_or_404(Checklist, pk=checklist_pk, release_id=release.pk)
    section = request.POST.get("section", "")
    items = checklist.items.filter(section=section)
    if not items.exists():
        return _refused(request, release, f"The checklist has no section {section!r}.", 400)
    try:
        result = mark_done(items, actor=Actor.for_user(request.user))
    except ChecklistForbidden as exc:
        return _refused(request, release, exc.message, 403)
    except ChecklistError as exc:
        return _refused(request, release, exc.message, 409)
    name = f"“{section}”" if section else "the checklist"
    text = f"Ticked {result.done} item{'s' if result.done != 1 else ''} in {name}"
    if result.left_for_ci:
        text += f"; {result.left_for_ci} left for CI to report"
    messages.success(request, text + ".", extra_tags=f"at-checklist-{checklist.pk}")
    if _fetched(request):
        release.refresh_from_db()
        return _page(request, release)
    return _back(release, f"#checklist-{checklist.pk}")


@login_required
@require_POST
def sign(request: HttpRequest, pk: int) -> HttpResponse:
    """Give a go or a no-go on the current gate through the sign-offs service."""
    # No role needed: signing is by membership of the rule's groups (may_see_signoffs).
    release = _release(request, pk, None)
    if not signoffs.may_see_signoffs(release, request.user):
        return _forbidden(request, NO_VIEW)
    decision = request.POST.get("decision", "")
    comment = request.POST.get("comment", "")
    form = {"comment": comment}
    try:
        signoffs.sign(release, user=request.user, decision=decision, comment=comment)
    except PermissionDenied as exc:
        return _refused(request, release, str(exc), 403, form=form)
    except ValidationError as exc:
        return _refused(request, release, " ".join(exc.messages), 400, form=form)
    said = "go" if decision == Decision.GO else "no-go"
    messages.success(request, f"Your {said} is recorded.", extra_tags="at-signoffs")
    if not request.user.has_perm(VIEW_PERM):
        return HttpResponseRedirect(reverse("signoffs:page", args=[release.pk]))
    return _back(release, "#signoffs")


@login_required
@require_GET
@_refusals_shown
def incident_list(request: HttpRequest) -> HttpResponse:
    """Unresolved incidents first, by severity: age, escalation level, who was paged, and the
    acknowledge / resolve buttons (which post to the incidents app's own pages)."""
    refusal = "Seeing incidents needs the Viewers, Approvers or Release managers role."
    check_perm(Actor.for_user(request.user), "incidents.view_incident", refusal)
    context = incidents.incident_list(
        request.user,
        service=request.GET.get("service", ""),
        show_all=request.GET.get("status") == "all",
    )
    return render(request, "pages/incidents.html", context)
