"""The permission matrix: every API endpoint, page GET and POST and admin action, for anonymous, a
signed-in person in no role, a viewer, an approver, a release manager, a superuser, a token of the
release's own service and a token of another service. Each cell is "may" (the request reaches the
domain: any answer but 401/403/404) or "refused" (401/403, or 404 where the object is hidden);
nothing a refused caller sends may change anything, and a refusal shows nothing of the release or
incident to someone who may not see it.

A new API route without a row here fails `test_every_api_route_is_in_the_matrix`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.checklists.choices import ChecklistKind
from apps.checklists.models import ChecklistItem
from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.models import Incident
from apps.releases.models import Event, Release
from apps.releases.roles import APPROVERS
from apps.rollouts import transitions
from apps.signoffs.models import SignOffRule
from tests.checklists.helpers import link, make_template
from tests.factories import PlanFactory, make_release
from tests.faults.conftest import page_on_call

ANON, NOROLE, VIEWER, APPROVER, MANAGER, ROOT, OWN, OTHER = (
    "anonymous",
    "no role",
    "viewer",
    "approver",
    "release manager",
    "superuser",
    "own token",
    "other token",
)
PRINCIPALS = [ANON, NOROLE, VIEWER, APPROVER, MANAGER, ROOT, OWN, OTHER]
# People with a role. A signed-in person in no group is in none of the allowed sets: they may
# sign in and nothing else (docs/security.md, "Roles").
PEOPLE = {VIEWER, APPROVER, MANAGER, ROOT}
EVERYONE = PEOPLE | {OWN, OTHER}
READERS = PEOPLE | {OWN}  # of one service's objects
OPERATORS = {MANAGER, ROOT, OWN}
RESPONDERS = {APPROVER, MANAGER, ROOT, OWN}
REFUSED = {401, 403, 404}


@dataclass
class World:
    """What the requests act on, and a client per principal."""

    release: Release
    planned: Release
    incident: Incident
    item: ChecklistItem
    clients: dict[str, Any]
    users: dict[str, Any]


@pytest.fixture
def world(db, service, other_service, production, rita, alice, victor) -> World:
    plan = PlanFactory(
        slug="matrix",
        stages=[("canary", 10, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )
    system = Actor.system("tests")
    link(plan, make_template("Canary exit", ChecklistKind.STAGE_EXIT), stage="canary")
    rule = SignOffRule.objects.create(plan=plan, stage_template=plan.stages.get(name="canary"))
    rule.groups.set([Group.objects.get(name=APPROVERS)])
    release = make_release(service=service, environment=production, plan=plan, version="1.0")
    transitions.start(release, actor=system)
    planned = make_release(service=service, environment=production, plan=plan, version="2.0")
    page_on_call(service)
    incident = lifecycle.open_incident(service=service, title="Errors", actor=system)
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    nobody = get_user_model().objects.create_user("nobody", "nobody@example.com", "pw-nobody-1")
    clients: dict[str, Any] = {ANON: APIClient()}
    people = ((NOROLE, nobody), (VIEWER, victor), (APPROVER, alice), (MANAGER, rita), (ROOT, root))
    for name, user in people:
        client = APIClient()
        client.force_login(user)
        clients[name] = client
    for name, scope in ((OWN, service), (OTHER, other_service)):
        _, key = ApiToken.issue(name, [scope])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        clients[name] = client
    # A manual item: people tick those; an automated one is CI's alone (left_for_ci).
    item = ChecklistItem.objects.get(checklist__release=release, key="")
    users = dict(people)
    return World(release, planned, incident, item, clients, users)


@dataclass(frozen=True)
class Call:
    method: str
    route: str  # the URL pattern as DRF's schema names it, for the coverage check
    path: Callable[[World], str]
    allowed: frozenset[str]
    body: Callable[[World], Any] | None = None
    # Answers that also count as refused for a principal (e.g. a per-item 400).
    refused_as: tuple[tuple[str, int], ...] = ()


def _r(w: World) -> int:
    return w.release.pk


def _target(w: World, transition: str) -> int:
    return (w.planned if transition == "start" else w.release).pk


API: list[Call] = [
    Call("GET", "/api/v1/health/", lambda w: "/api/v1/health/", frozenset(PRINCIPALS)),
    Call("GET", "/api/v1/services/", lambda w: "/api/v1/services/", frozenset(EVERYONE)),
    Call("GET", "/api/v1/services/{slug}/", lambda w: "/api/v1/services/ai-orchestra/",
         frozenset(READERS)),
    Call("GET", "/api/v1/plans/", lambda w: "/api/v1/plans/", frozenset(EVERYONE)),
    Call("GET", "/api/v1/plans/{slug}/", lambda w: "/api/v1/plans/matrix/", frozenset(EVERYONE)),
    Call("GET", "/api/v1/releases/", lambda w: "/api/v1/releases/", frozenset(EVERYONE)),
    Call("POST", "/api/v1/releases/", lambda w: "/api/v1/releases/", frozenset(OPERATORS),
         lambda w: {"service": "ai-orchestra", "environment": "production", "version": "9.9"}),
    Call("GET", "/api/v1/releases/{id}/", lambda w: f"/api/v1/releases/{_r(w)}/",
         frozenset(READERS)),
    *[
        Call("GET", f"/api/v1/releases/{{id}}/{name}/",
             lambda w, name=name, query=query: f"/api/v1/releases/{_r(w)}/{name}/{query}",
             frozenset(READERS))
        for name, query in (("gate", ""), ("traffic", ""), ("bucket", "?unit=u1"),
                            ("checklists", ""), ("checks/latest", ""), ("signoffs", ""),
                            ("events", ""))
    ],
    *[
        Call("POST", f"/api/v1/releases/{{id}}/{name}/",
             lambda w, name=name: f"/api/v1/releases/{_target(w, name)}/{name}/",
             frozenset(OPERATORS), lambda w: {"reason": "matrix"})
        for name in ("start", "advance", "pause", "resume", "rollback", "abort")
    ],
    # The release is at its first stage: a step back reaches the domain and is refused (409).
    Call("POST", "/api/v1/releases/{id}/step-back/",
         lambda w: f"/api/v1/releases/{_r(w)}/step-back/", frozenset(OPERATORS),
         lambda w: {"reason": "matrix"}),
    Call("POST", "/api/v1/releases/{id}/artifact/", lambda w: f"/api/v1/releases/{_r(w)}/artifact/",
         frozenset(OPERATORS), lambda w: {"commit_sha": "a" * 40}),
    # Reporting a key ticks automated items: CI's (its token's) alone, never a person's.
    Call("POST", "/api/v1/releases/{id}/checks/", lambda w: f"/api/v1/releases/{_r(w)}/checks/",
         frozenset({OWN}), lambda w: {"key": "tests", "passed": True}),
    Call("POST", "/api/v1/releases/{id}/signoffs/", lambda w: f"/api/v1/releases/{_r(w)}/signoffs/",
         frozenset({APPROVER}), lambda w: {"decision": "go", "comment": "matrix"}),
    # A batch naming another service's release is refused item by item (400, nothing stored).
    Call("POST", "/api/v1/samples/", lambda w: "/api/v1/samples/", frozenset({ROOT, OWN}),
         lambda w: [{"release": _r(w), "metric": "error_rate", "value": 0.01}],
         refused_as=((OTHER, 400),)),
    Call("GET", "/api/v1/incidents/", lambda w: "/api/v1/incidents/", frozenset(EVERYONE)),
    Call("POST", "/api/v1/incidents/", lambda w: "/api/v1/incidents/",
         frozenset({MANAGER, ROOT, OWN}),
         lambda w: {"service": "ai-orchestra", "title": "Matrix", "severity": "sev3"}),
    Call("GET", "/api/v1/incidents/{id}/", lambda w: f"/api/v1/incidents/{w.incident.pk}/",
         frozenset(READERS)),
    *[
        Call("POST", f"/api/v1/incidents/{{id}}/{name}/",
             lambda w, name=name: f"/api/v1/incidents/{w.incident.pk}/{name}/",
             frozenset(RESPONDERS), lambda w: {"reason": "matrix"})
        for name in ("acknowledge", "resolve")
    ],
    Call("POST", "/api/v1/hooks/alertmanager/", lambda w: "/api/v1/hooks/alertmanager/",
         frozenset({OWN, OTHER}), lambda w: {"version": "4", "alerts": []}),
    # Runbook import: release managers, and a token for its own service.
    *[
        Call("POST", f"/api/v1/runbooks/{name}/", lambda w, name=name: f"/api/v1/runbooks/{name}",
             frozenset({MANAGER, ROOT, OWN}),
             lambda w: {"runbook": "# R\n- [ ] Tests pass\n", "service": "ai-orchestra"})
        for name in ("preview", "import")
    ],
    # Configuration as code: release managers, or a token a release manager created (the
    # matrix's tokens were issued by nobody, so they may not).
    Call("POST", "/api/v1/config/apply", lambda w: "/api/v1/config/apply?dry_run=1",
         frozenset({MANAGER, ROOT}), lambda w: {"version": 1}),
]  # fmt: skip


def outcome(world: World, principal: str, call: Call) -> int:
    client = world.clients[principal]
    body = call.body(world) if call.body else None
    if call.method == "GET":
        response = client.get(call.path(world))
    else:
        response = client.post(
            call.path(world), json.dumps(body or {}), content_type="application/json"
        )
    return response.status_code


@pytest.mark.parametrize("call", API, ids=lambda c: f"{c.method} {c.route}")
def test_api_matrix(world: World, call: Call) -> None:
    got = {}
    for principal in PRINCIPALS:
        with transaction.atomic():  # each principal meets the same state
            got[principal] = outcome(world, principal, call)
            transaction.set_rollback(True)
    refused = {p: code in REFUSED or (p, code) in call.refused_as for p, code in got.items()}
    wrong = {p: got[p] for p in PRINCIPALS if refused[p] == (p in call.allowed)}
    assert not wrong, f"{call.method} {call.route}: {got}"


def test_every_api_route_is_in_the_matrix() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    routes = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert routes == {(c.method, c.route) for c in API}


# --- pages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PagePost:
    name: str
    path: Callable[[World], str]
    data: dict[str, str]
    allowed: frozenset[str]


PAGE_POSTS = [
    PagePost("transition", lambda w: f"/releases/{_r(w)}/transition/",
             {"action": "pause", "reason": "matrix"}, frozenset({MANAGER, ROOT})),
    PagePost("step back", lambda w: f"/releases/{_r(w)}/transition/",
             {"action": "step_back", "reason": "matrix"}, frozenset({MANAGER, ROOT})),
    PagePost("tick item", lambda w: f"/releases/{_r(w)}/checklist-items/{w.item.pk}/",
             {"done": "1"}, frozenset({APPROVER, MANAGER, ROOT})),
    # Signing is by membership of the rule's groups (Approvers here), not by role.
    PagePost("sign", lambda w: f"/releases/{_r(w)}/sign/", {"decision": "go", "comment": "ok"},
             frozenset({APPROVER})),
    *[
        PagePost(f"incident {action}",
                 lambda w, action=action: f"/incidents/{w.incident.pk}/{action}/",
                 {"reason": "matrix"}, frozenset({APPROVER, MANAGER, ROOT}))
        for action in ("acknowledge", "mitigate", "resolve", "reopen")
    ],
]  # fmt: skip


# What a page shows of the world's release and incident: a refusal to someone who may not see
# them must show none of it (the service, the stage, the incident's title).
SHOWN = ("AI Orchestra", "canary", "Errors")


def _refused_page(response: Any) -> bool:
    to_login = response.status_code == 302 and "/accounts/login/" in response["Location"]
    return to_login or response.status_code in (403, 404)


def _assert_shows_nothing(response: Any, who: str) -> None:
    body = response.content.decode()
    shown = [text for text in SHOWN if text in body]
    assert not shown, f"{who} was refused, yet the answer shows {shown}"


@pytest.mark.parametrize("post", PAGE_POSTS, ids=lambda p: p.name)
def test_page_post_matrix(world: World, post: PagePost) -> None:
    got = {}
    for principal in [ANON, *world.users]:
        client = Client()
        if principal != ANON:
            client.force_login(world.users[principal])
        events = Event.objects.count()
        with transaction.atomic():
            response = client.post(post.path(world), post.data)
            refused = _refused_page(response)
            got[principal] = response.status_code
            if refused:
                assert Event.objects.count() == events, f"{principal}: refused, yet recorded"
            if principal in (ANON, NOROLE):
                _assert_shows_nothing(response, principal)
            transaction.set_rollback(True)
        assert refused != (principal in post.allowed), f"{post.name}: {got}"


@dataclass(frozen=True)
class PageGet:
    name: str
    path: Callable[[World], str]
    allowed: frozenset[str]


# Every page a person reads. Anyone with a role reads them all; a person in no role reads none
# (the sign-off page: only a member of one of the release's sign-off groups, see
# tests/signoffs/test_page.py; an incident: only someone paged for it).
PAGE_GETS = [
    PageGet("dashboard", lambda w: "/", frozenset(PEOPLE)),
    PageGet("release page", lambda w: f"/releases/{_r(w)}/", frozenset(PEOPLE)),
    PageGet("sign-off page", lambda w: f"/releases/{_r(w)}/signoff/", frozenset(PEOPLE)),
    PageGet("incident list", lambda w: "/incidents/", frozenset(PEOPLE)),
    PageGet("incident", lambda w: f"/incidents/{w.incident.pk}/", frozenset(PEOPLE)),
    PageGet("on call", lambda w: "/oncall/", frozenset(PEOPLE)),
    PageGet("reports", lambda w: "/reports/", frozenset(PEOPLE)),
]


@pytest.mark.parametrize("page", PAGE_GETS, ids=lambda p: p.name)
def test_page_get_matrix(world: World, page: PageGet) -> None:
    got = {}
    for principal in [ANON, *world.users]:
        client = Client()
        if principal != ANON:
            client.force_login(world.users[principal])
        response = client.get(page.path(world))
        got[principal] = response.status_code
        refused = _refused_page(response)
        if refused:
            _assert_shows_nothing(response, principal)
        assert refused != (principal in page.allowed), f"{page.name}: {got}"


# --- admin -----------------------------------------------------------------------------------

# The admin actions each role is offered on the models it may open (deletion: "delete").
ADMIN_ACTIONS = {
    "api.ApiToken": {MANAGER: {"revoke_tokens"}, ROOT: {"revoke_tokens", "delete"}},
    "checklists.Checklist": {r: {"mark_done_action"} for r in (APPROVER, MANAGER, ROOT)},
    "checklists.ChecklistItem": {r: {"mark_done_action"} for r in (APPROVER, MANAGER, ROOT)},
    "incidents.Incident": {
        r: {"acknowledge_incidents", "resolve_incidents"} for r in (APPROVER, MANAGER, ROOT)
    },
    "incidents.NotificationDelivery": {r: {"resend_deliveries"} for r in (MANAGER, ROOT)},
    "outbox.Message": {r: {"send_again"} for r in (MANAGER, ROOT)},
    "releases.Release": {
        r: {"start_releases", "advance_releases", "force_advance_releases", "pause_releases",
            "resume_releases", "rollback_releases", "abort_releases", "step_back_releases",
            "run_metric_checks"}
        for r in (MANAGER, ROOT)
    },
    "reports.Report": {MANAGER: {"resend_all", "resend_failed"},
                       ROOT: {"resend_all", "resend_failed", "delete"}},
    "reports.ReportDelivery": {MANAGER: {"resend"}, ROOT: {"resend", "delete"}},
    "reports.ReportSubscription": {r: {"send_now", "delete"} for r in (MANAGER, ROOT)},
    "slack.SlackMessage": {ROOT: {"send_again"}},
}  # fmt: skip
# Whatever else an admin offers is deletion, for those who may delete that model.
APPEND_ONLY = ["releases.Event", "incidents.IncidentEvent", "checks.CheckRun", "checks.CheckResult"]


def test_admin_action_matrix(world: World) -> None:
    factory = RequestFactory()
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        for principal, user in world.users.items():
            request = factory.post("/")
            request.user = user
            if not model_admin.has_view_or_change_permission(request):
                continue  # the admin answers 403 before any action
            offered = {
                "delete" if name == "delete_selected" else name
                for name in model_admin.get_actions(request)
            }
            expected = ADMIN_ACTIONS.get(label, {}).get(principal, set())
            if label not in ADMIN_ACTIONS and model_admin.has_delete_permission(request):
                expected = {"delete"}
            if label.startswith("django_celery_beat."):
                assert principal == ROOT, f"{principal} may open the {label} admin"
                continue  # the schedule's own admin; superusers only
            assert offered == expected, f"{label} for {principal}: {sorted(offered)}"


@pytest.mark.parametrize("label", APPEND_ONLY)
def test_the_audit_tables_are_append_only_in_the_admin(world: World, label: str) -> None:
    from django.apps import apps

    model = apps.get_model(label)
    factory = RequestFactory()
    for principal, user in world.users.items():
        request = factory.get("/")
        request.user = user
        model_admin = admin.site._registry.get(model)
        if model_admin is None:
            continue  # shown only inline on its parent, read-only there (below)
        assert not model_admin.has_add_permission(request), (label, principal)
        assert not model_admin.has_change_permission(request), (label, principal)
        assert not model_admin.has_delete_permission(request), (label, principal)


def test_the_release_timeline_cannot_be_edited_through_the_admin_or_the_api(world: World):
    event = Event.objects.filter(release=world.release).first()
    root = Client()
    root.force_login(world.users[ROOT])
    change = f"/admin/releases/event/{event.pk}/change/"
    response = root.post(change, {"reason": "rewritten"})
    assert response.status_code in (200, 403)  # a read-only view, or refused
    delete = root.post(f"/admin/releases/event/{event.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    event.refresh_from_db()
    assert event.reason != "rewritten"
    assert Event.objects.filter(pk=event.pk).exists()
    # Deleting a release would take its timeline with it: nobody may.
    release_delete = root.post(f"/admin/releases/release/{_r(world)}/delete/", {"post": "yes"})
    assert release_delete.status_code == 403
    assert Release.objects.filter(pk=_r(world)).exists()
    # The API has no route that writes events: the release's story is read only.
    assert [(c.method, c.route) for c in API if "event" in c.route] == [
        ("GET", "/api/v1/releases/{id}/events/")
    ]
    events = f"/api/v1/releases/{_r(world)}/events/"
    assert root.post(events, {}, content_type="application/json").status_code == 405
