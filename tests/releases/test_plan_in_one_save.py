"""A whole plan in one save on "Add rollout plan": stage-exit checklists and stage sign-off
rules may name the stages added on the same page (apps/releases/plan_stages.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from apps.checklists.choices import ChecklistKind
from apps.checklists.models import PlanChecklist
from apps.releases.models import RolloutPlan
from apps.releases.roles import APPROVERS
from apps.signoffs.models import SignOffRule
from tests.checklists.helpers import make_template
from tests.checklists.test_admin import form_values, formset_data
from tests.factories import PlanFactory

pytestmark = pytest.mark.django_db

ADD = reverse("admin:releases_rolloutplan_add")


def prefix_of(response: Any, model: type) -> str:
    return next(
        i.formset.prefix for i in response.context["inline_admin_formsets"] if i.opts.model is model
    )


def add_page_post(client: Client) -> tuple[Any, dict[str, Any]]:
    page = client.get(ADD)
    assert page.status_code == 200
    data = formset_data(page) | form_values(page.context["adminform"].form)
    data |= {"name": "Canary then all", "slug": "canary-then-all"}
    # The stage inline's first two blank rows.
    for row, (name, pct) in enumerate([("canary", 5), ("all", 100)]):
        data |= {
            f"stages-{row}-position": row,
            f"stages-{row}-name": name,
            f"stages-{row}-traffic_percentage": pct,
            f"stages-{row}-min_soak": "0",
        }
    return page, data


@pytest.fixture
def staff(rita):
    client = Client()
    client.force_login(rita)
    return client


def test_stage_exit_checklist_and_stage_rule_name_stages_added_in_the_same_save(staff) -> None:
    exit_list = make_template("Canary exit", ChecklistKind.STAGE_EXIT, {"C": ["p95 ok"]})
    pre = make_template("Pre-flight")
    approvers = Group.objects.get(name=APPROVERS)
    page, data = add_page_post(staff)
    lists, rules = prefix_of(page, PlanChecklist), prefix_of(page, SignOffRule)
    data |= {
        f"{lists}-TOTAL_FORMS": 2,
        f"{lists}-0-template": pre.pk,
        f"{lists}-1-template": exit_list.pk,
        f"{lists}-1-stage_template": "new-1",
        f"{rules}-TOTAL_FORMS": 2,
        f"{rules}-0-groups": [approvers.pk],
        f"{rules}-0-quorum": "each_group",
        f"{rules}-0-approvals_needed": 1,
        f"{rules}-1-stage_template": "new-1",
        f"{rules}-1-groups": [approvers.pk],
        f"{rules}-1-quorum": "each_group",
        f"{rules}-1-approvals_needed": 2,
    }
    response = staff.post(ADD, data)
    assert response.status_code == 302, response.context["errors"]

    plan = RolloutPlan.objects.get(slug="canary-then-all")
    canary = plan.stages.get(name="canary")
    assert sorted(
        PlanChecklist.objects.filter(plan=plan).values_list("template__name", "stage_template")
    ) == [("Canary exit", canary.pk), ("Pre-flight", None)]
    assert sorted(
        SignOffRule.objects.filter(plan=plan).values_list("stage_template", "approvals_needed"),
        key=str,
    ) == sorted([(None, 1), (canary.pk, 2)], key=str)


def test_the_add_page_offers_the_blank_stage_rows(staff) -> None:
    page = staff.get(ADD)
    form = page.context["inline_admin_formsets"]
    lists = next(i for i in form if i.opts.model is PlanChecklist)
    choices = dict(lists.formset.empty_form.fields["stage_template"].choices)
    assert choices["new-1"] == "New stage row 1" and "new-3" in choices
    assert 'src="/static/js/plan-stage-choices.js"' in page.text


def test_a_blank_stage_row_named_by_a_rule_is_refused_by_name(staff) -> None:
    exit_list = make_template("Canary exit", ChecklistKind.STAGE_EXIT, {"C": ["p95 ok"]})
    page, data = add_page_post(staff)
    lists = prefix_of(page, PlanChecklist)
    data |= {
        f"{lists}-TOTAL_FORMS": 1,
        f"{lists}-0-template": exit_list.pk,
        f"{lists}-0-stage_template": "new-3",  # the third row was left blank
    }
    response = staff.post(ADD, data)
    assert response.status_code == 200
    assert "New stage row 3 of the stages above is empty" in response.text
    assert not RolloutPlan.objects.filter(slug="canary-then-all").exists()


def test_two_rules_on_one_new_stage_are_refused_and_nothing_is_saved(staff) -> None:
    approvers = Group.objects.get(name=APPROVERS)
    page, data = add_page_post(staff)
    rules = prefix_of(page, SignOffRule)
    data[f"{rules}-TOTAL_FORMS"] = 2
    for n in range(2):
        data |= {
            f"{rules}-{n}-stage_template": "new-2",
            f"{rules}-{n}-groups": [approvers.pk],
            f"{rules}-{n}-quorum": "each_group",
            f"{rules}-{n}-approvals_needed": 1,
        }
    response = staff.post(ADD, data)
    assert response.status_code == 200
    assert "Only one sign-off rule per gate: leaving stage all has two." in response.text
    assert not RolloutPlan.objects.exists()


def test_a_stage_of_another_plan_is_not_offered_nor_accepted(staff) -> None:
    other = PlanFactory(slug="other")
    exit_list = make_template("Canary exit", ChecklistKind.STAGE_EXIT, {"C": ["p95 ok"]})
    page, data = add_page_post(staff)
    lists = prefix_of(page, PlanChecklist)
    data |= {
        f"{lists}-TOTAL_FORMS": 1,
        f"{lists}-0-template": exit_list.pk,
        f"{lists}-0-stage_template": other.stages.first().pk,
    }
    response = staff.post(ADD, data)
    assert response.status_code == 200
    assert "Choose a stage of this plan." in response.text
