"""POST /api/v1/runbooks/preview and /import: the same draft and save as the command, for
release managers and for tokens of the service, all or nothing, with the diff on re-import."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.checks.models import MetricCriterion
from apps.releases.models import RolloutPlan
from apps.releases.roles import ROLE_PERMISSIONS
from apps.runbooks.models import RunbookImport
from tests.factories import EnvironmentFactory

from .keys import RUNBOOKS

pytestmark = pytest.mark.django_db
PAYMENTS = (RUNBOOKS / "payments-tables-runbook.md").read_text()


@pytest.fixture(autouse=True)
def environments() -> None:
    EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    EnvironmentFactory()


def signed_in(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_roles_hold_the_runbook_permissions_of_roles_py() -> None:
    for name, perms in ROLE_PERMISSIONS.items():
        held = Group.objects.get(name=name).permissions.filter(content_type__app_label="runbooks")
        assert {f"runbooks.{c}" for c in held.values_list("codename", flat=True)} == {
            p for p in perms if p.startswith("runbooks.")
        }, name


def test_preview_gives_the_dry_run_object_and_saves_nothing(rita) -> None:
    answer = signed_in(rita).post(
        "/api/v1/runbooks/preview", {"runbook": PAYMENTS, "source": "payments.md"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    draft = answer.json()["draft"]
    assert set(draft) == {"title", "notes", "checklists", "plan", "criteria", "escalation"}
    assert [s["traffic_percentage"] for s in draft["plan"]["stages"]] == [0, 2, 25, 100]
    assert answer.json()["diff"] is None
    assert RolloutPlan.objects.filter(name__startswith="Payments").count() == 0


def test_approvers_and_viewers_may_not_import(alice, victor, service) -> None:
    for person in (alice, victor):
        for path in ("/api/v1/runbooks/preview", "/api/v1/runbooks/import"):
            answer = signed_in(person).post(
                path, {"runbook": PAYMENTS, "service": service.slug}, format="json"
            )
            assert answer.status_code == 403, (person, path)
    assert not RunbookImport.objects.exists()


def test_a_token_imports_for_its_service_only(api, service, other_service) -> None:
    refused = api.post(
        "/api/v1/runbooks/import/",
        {"runbook": PAYMENTS, "service": other_service.slug},
        format="json",
    )
    assert refused.status_code == 403
    assert "may not" in refused.json()["detail"]
    answer = api.post(
        "/api/v1/runbooks/import", {"runbook": PAYMENTS, "service": service.slug}, format="json"
    )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    service.refresh_from_db()
    assert service.default_plan.pk == body["plan"]["id"]
    assert MetricCriterion.objects.filter(plan_id=body["plan"]["id"]).count() == 2
    assert RunbookImport.objects.get().created_by.startswith("token:")


def test_a_file_upload_works_too(rita, service) -> None:
    upload = (RUNBOOKS / "vi-mojibake-runbook.md").open("rb")
    answer = signed_in(rita).post(
        "/api/v1/runbooks/preview", {"file": upload, "service": service.slug}, format="multipart"
    )
    assert answer.status_code == 200
    assert answer.json()["draft"]["title"].startswith("Hướng dẫn")
    assert any("Mac Roman" in n for n in answer.json()["draft"]["notes"])


def test_an_edited_draft_is_what_is_saved(rita, service) -> None:
    client = signed_in(rita)
    draft = client.post("/api/v1/runbooks/preview", {"runbook": PAYMENTS}, format="json").json()[
        "draft"
    ]
    draft["plan"]["stages"][1]["traffic_percentage"] = 5  # edited
    del draft["criteria"][2:]  # the latency criteria unticked
    draft["checklists"] = draft["checklists"][:1]
    answer = client.post(
        "/api/v1/runbooks/import",
        {"draft": draft, "service": service.slug, "source": "payments.md"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    plan = RolloutPlan.objects.get(pk=answer.json()["plan"]["id"])
    assert [s.traffic_percentage for s in plan.stages.order_by("position")] == [0, 5, 25, 100]
    assert [c.metric.key for c in MetricCriterion.objects.filter(plan=plan)] == [
        "payment_error_rate"
    ]
    assert len(answer.json()["checklists"]) == 1


def test_bad_input_is_a_400_naming_it_and_saves_nothing(rita, service) -> None:
    client = signed_in(rita)
    cases = [
        ({"runbook": PAYMENTS}, "Name the service"),
        ({"service": service.slug}, "Send the runbook"),
        ({"runbook": "just prose\n", "service": service.slug}, "nothing to import"),
        (
            {"draft": {"title": "x"}, "service": service.slug},
            "'draft': the draft: 'plan' is missing",
        ),
        (
            {"runbook": PAYMENTS.replace("| staging |", "| qa |"), "service": service.slug},
            "no environment 'qa'",
        ),
    ]
    for body, message in cases:
        answer = client.post("/api/v1/runbooks/import", body, format="json")
        assert answer.status_code == 400, body
        assert message in " ".join([answer.json()["detail"], *answer.json()["errors"]]), (
            answer.json()
        )
    assert not RunbookImport.objects.exists()
    assert not RolloutPlan.objects.filter(name__startswith="Payments").exists()


def test_reimporting_a_changed_runbook_previews_the_diff(rita, service) -> None:
    client = signed_in(rita)
    first = client.post(
        "/api/v1/runbooks/import", {"runbook": PAYMENTS, "service": service.slug}, format="json"
    )
    assert first.status_code == 201
    changed = (
        PAYMENTS.replace(
            "| Canary | production | 2% | 6 hours |", "| Canary | production | 5% | 6 hours |"
        )
        .replace("| > 1% | roll back |", "| > 2% | roll back |")
        .replace("- [ ] Refund flow exercised end to end\n", "")
        .replace("| 3 | 45 min | Head of engineering |", "| 3 | 60 min | Head of engineering |")
    )
    answer = client.post(
        "/api/v1/runbooks/preview", {"runbook": changed, "service": service.slug}, format="json"
    )
    diff = answer.json()["diff"]
    assert diff["previous"]["id"] == first.json()["import"]
    described = {(c["part"], c["change"], c["what"]) for c in diff["changes"]}
    assert described == {
        ("stage", "changed", "2:"),
        ("criterion", "changed", "payment_error_rate > (critical)"),
        ("escalation level", "changed", "L3"),
        (
            "checklist item",
            "removed",
            "Payments API Release Runbook: Post-deployment validation: "
            "Refund flow exercised end to end",
        ),
    }
    stage = next(c for c in diff["changes"] if c["part"] == "stage")
    assert (stage["before"], stage["after"]) == (
        "Canary [production] 2%, soak 21600s",
        "Canary [production] 5%, soak 21600s",
    )
    # Unchanged: an empty diff, not none.
    same = client.post(
        "/api/v1/runbooks/preview", {"runbook": PAYMENTS, "service": service.slug}, format="json"
    )
    assert same.json()["diff"]["changes"] == []


def test_token_principal_check_uses_api_tokens(service) -> None:
    _, key = ApiToken.issue("other", [])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    answer = client.post(
        "/api/v1/runbooks/import", {"runbook": PAYMENTS, "service": service.slug}, format="json"
    )
    assert answer.status_code == 403


def test_a_body_that_is_not_an_object_is_a_400(rita) -> None:
    for path in ("/api/v1/runbooks/preview", "/api/v1/runbooks/import"):
        answer = signed_in(rita).post(path, [1, 2], format="json")
        assert answer.status_code == 400
        assert answer.json()["detail"] == "The body must be a JSON object (or a form), not list."
