"""One table of transition inputs (apps.rollouts.inputs), the same at every entry point.

A reason is required to pause, roll back, abort or step back and to force any step; optional
to start, advance or resume. Each action is tried without a reason through the API (a release
manager's session), the release page and the admin action: it moves the release exactly when the
table says no reason is needed, and always with one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.core.actors import Actor
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release
from apps.rollouts import inputs, transitions
from tests.factories import PlanFactory, make_release

# What each row acts on: the status the action starts from. "force" is the admin's force
# action, and force=true on the API and the page, on a running release.
BEFORE = {
    "start": ReleaseStatus.PLANNED,
    "advance": ReleaseStatus.IN_PROGRESS,
    "pause": ReleaseStatus.IN_PROGRESS,
    "resume": ReleaseStatus.PAUSED,
    "rollback": ReleaseStatus.IN_PROGRESS,
    "abort": ReleaseStatus.PLANNED,
    "force": ReleaseStatus.IN_PROGRESS,
    "step_back": ReleaseStatus.IN_PROGRESS,  # at the second stage (`_release`)
}
ENTRY_POINTS = ["api", "page", "admin"]


def _release(status: str, service, production, action: str = "") -> Release:
    plan = PlanFactory(
        stages=[("canary", 10, timedelta(0), False), ("full", 100, timedelta(0), False)]
    )
    release = make_release(service=service, environment=production, plan=plan)
    system = Actor.system("tests")
    if status != ReleaseStatus.PLANNED:
        transitions.start(release, actor=system)
    if status == ReleaseStatus.PAUSED:
        transitions.pause(release, actor=system, reason="hold")
    if action == "step_back":
        transitions.advance(release, actor=system)
    return release


def _post(entry: str, rita, release: Release, action: str, reason: str) -> None:
    name, force = ("advance", True) if action == "force" else (action, False)
    if entry == "api":
        client = APIClient()
        client.force_login(rita)
        body = {"reason": reason, "force": force}
        route = name.replace("_", "-")  # step_back answers at step-back/
        client.post(f"/api/v1/releases/{release.pk}/{route}/", body, format="json")
    elif entry == "page":
        client = Client()
        client.force_login(rita)
        data = {"action": name, "reason": reason, **({"force": "1"} if force else {})}
        client.post(f"/releases/{release.pk}/transition/", data)
    else:
        rita.is_staff = True
        rita.save(update_fields=["is_staff"])
        client = Client()
        client.force_login(rita)
        admin_action = "force_advance_releases" if force else f"{name}_releases"
        data = {"action": admin_action, "_selected_action": [release.pk], "apply": "1"}
        client.post("/admin/releases/release/", {**data, "reason": reason})


@pytest.mark.django_db
@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("action", list(BEFORE))
def test_each_entry_point_asks_a_reason_exactly_when_the_table_does(
    entry, action, rita, service, production
):
    required = inputs.needs_reason(
        "advance" if action == "force" else action, force=action == "force"
    )
    release = _release(BEFORE[action], service, production, action)
    before = (release.status, release.current_stage_id)

    _post(entry, rita, release, action, reason="")

    release.refresh_from_db()
    moved = (release.status, release.current_stage_id) != before
    assert moved != required, f"{entry} {action} without a reason: moved={moved}"
    if required:
        _post(entry, rita, release, action, reason="Latency up on canary")
        release.refresh_from_db()
        assert (release.status, release.current_stage_id) != before
        assert release.events.order_by("-id").first().reason == "Latency up on canary"


def test_the_table_is_the_rule_people_expect():
    required = {a for a in inputs.INPUTS if inputs.needs_reason(a)}
    assert required == {"pause", "rollback", "abort", "step_back"}
    assert all(inputs.needs_reason(a, force=True) for a in ("start", "advance"))
    assert {a for a, spec in inputs.INPUTS.items() if spec.gated} == {"start", "advance"}
    assert set(inputs.INPUTS) == set(transitions.ACTIONS)


@pytest.mark.django_db
def test_force_means_the_next_gated_step(service, production):
    planned = _release(ReleaseStatus.PLANNED, service, production)
    assert inputs.forced_step(planned) == "start"
    running = _release(ReleaseStatus.IN_PROGRESS, service, production)
    assert inputs.forced_step(running) == "advance"
