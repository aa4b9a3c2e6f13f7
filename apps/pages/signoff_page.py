"""The sign-off page reached from the request email: see the gate, say go or no-go.

A page like the release page: it asks the gate (apps.rollouts) for the blockers it shows and the
sign-offs app for the rest. Its URLs keep the "signoffs" namespace (signoff_urls.py), so the
emailed links stay as they were. GET only reads (mail scanners prefetch links); every change is
a CSRF-protected POST.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.core.actors import Actor
from apps.releases.models import Release
from apps.rollouts import gate
from apps.signoffs import asking, services
from apps.signoffs.choices import Decision

OPERATE_PERM = "releases.operate_release"
LOGIN_URL = reverse_lazy("signoffs:login")
# Says nothing of the release: not even whether its gate asks for sign-offs, or from whom.
NOT_YOURS = (
    "You may not see this release: you hold no role and are in none of the groups it asks to "
    "sign off. Ask a release manager if you should be."
)


def forbidden(request: HttpRequest) -> HttpResponse:
    """The refusal for someone who may not see the release: no detail of it."""
    return render(request, "forbidden.html", {"message": NOT_YOURS}, status=403)


def _state_of(signoff: Any, status: services.GateStatus | None, now: Any) -> str:
    """How a sign-off stands, in words a stakeholder understands."""
    if signoff.withdrawn_at:
        return "withdrawn"
    if signoff.lapsed_at:
        return f"lapsed: {signoff.lapse_reason}"
    if status is None or signoff.gate_key != status.gate.key:
        return "for an earlier gate"
    if signoff not in status.assessment.standing:
        return "expired"
    if signoff.decision == Decision.NO_GO:
        return "blocking"
    if signoff in status.assessment.counted:
        return "counts"
    return "does not count (not in a required group, or the author's own)"


def _checklists(release: Release) -> list[Any]:
    """The release's open checklists with their progress, when the checklists app is there."""
    if not django_apps.is_installed("apps.checklists"):
        return []
    from apps.checklists.models import Checklist

    return list(
        Checklist.objects.filter(release=release, opened_at__isnull=False)
        .with_progress()
        .select_related("stage")
        .order_by("position", "id")
    )


def _metric_verdicts(release: Release, limit: int = 10) -> list[Any]:
    """The latest metric check results, when the checks app is there."""
    if not django_apps.is_installed("apps.checks"):
        return []
    from apps.checks.models import CheckResult

    results = list(
        CheckResult.objects.filter(release=release)
        .select_related("criterion__metric")
        .order_by("-at", "-id")[:limit]
    )
    for result in results:
        # The metric's own formatter, as the charts and the emails use: "1 %", not "0.010".
        metric = result.criterion.metric if result.criterion else None
        if result.value is None:
            result.shown_value = "—"
        else:
            result.shown_value = metric.format(result.value) if metric else f"{result.value:.4g}"
    return results


def _context(request: HttpRequest, release: Release, **extra: Any) -> dict[str, Any]:
    now = timezone.now()
    verdict = gate.evaluate(release, now=now)
    status = services.gate_status(release, now=now, with_history=True)
    user = request.user
    mine = None
    go_refusal = no_go_refusal = ""
    if status is not None:
        mine = next((s for s in status.assessment.standing if s.signer_id == user.pk), None)
        go_refusal = services.why_cannot_sign(status, user, Decision.GO)
        no_go_refusal = services.why_cannot_sign(status, user, Decision.NO_GO)
    history = [
        {"signoff": s, "state": _state_of(s, status, now)}
        for s in (status.history if status else _history(release))
    ]
    return {
        "release": release,
        "verdict": verdict,
        "status": status,
        "mine": mine,
        "go_refusal": go_refusal,
        "no_go_refusal": no_go_refusal,
        "history": history,
        "checklists": _checklists(release),
        "metric_verdicts": _metric_verdicts(release),
        "may_request": user.has_perm(OPERATE_PERM) and status is not None,
        "comment": "",
        "error": "",
        **extra,
    }


def _history(release: Release) -> list[Any]:
    return list(release.signoffs.select_related("signer", "stage"))


@login_required(login_url=LOGIN_URL)
@require_http_methods(["GET", "POST"])
def signoff_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Show the release's gate and sign-offs; POST records go, no-go, withdrawal or a request."""
    release = get_object_or_404(Release.objects.with_related(), pk=pk)
    if not services.may_see_signoffs(release, request.user):
        return forbidden(request)
    if request.method == "GET":
        return render(request, "signoffs/page.html", _context(request, release))

    action = request.POST.get("action", "")
    comment = request.POST.get("comment", "")
    try:
        if action in (Decision.GO, Decision.NO_GO):
            services.sign(release, user=request.user, decision=action, comment=comment)
            said = "go" if action == Decision.GO else "no-go"
            messages.success(request, f"Your {said} is recorded.")
        elif action == "withdraw":
            services.withdraw(release, user=request.user)
            messages.success(request, "Your sign-off is withdrawn.")
        elif action == "request":
            if not request.user.has_perm(OPERATE_PERM):
                raise PermissionDenied("Only a release manager may ask for sign-offs early.")
            blockers = [b.as_dict() for b in gate.evaluate(release).blockers]
            asked = asking.request_signoffs(
                release, actor=Actor.for_user(request.user), early=True, blockers=blockers
            )
            names = ", ".join(sorted(r.user.get_username() for r in asked))
            messages.success(
                request,
                f"Asked {names}."
                if asked
                else "Nobody left to ask: everyone needed "
                "was asked already, has signed, or the quorum is reached.",
            )
        else:
            raise ValidationError(f"Unknown action {action!r}: use go, no_go or withdraw.")
    except PermissionDenied as exc:
        return _refused(request, release, str(exc), comment, status=403)
    except ValidationError as exc:
        return _refused(request, release, " ".join(exc.messages), comment, status=400)
    return HttpResponseRedirect(reverse("signoffs:page", args=[release.pk]))


def _refused(
    request: HttpRequest, release: Release, error: str, comment: str, *, status: int
) -> HttpResponse:
    release.refresh_from_db()
    context = _context(request, release, error=error, comment=comment)
    return render(request, "signoffs/page.html", context, status=status)
