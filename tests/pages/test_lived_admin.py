"""Issue 19's admin moments in Chromium at 1366×900: a plan built in one save with a plan-wide
criterion, a start checklist, a stage-exit checklist and sign-off rules on the start and on
leaving a stage typed on the same page; the plan page fitting its window with
readable inline headings; the criterion's stage list naming each stage's plan; and a warning for
an escalation level that pages nobody."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from apps.checklists.choices import ChecklistKind
from apps.checklists.models import PlanChecklist
from apps.checks.models import MetricCriterion
from apps.incidents.models import EscalationPolicy
from apps.releases.models import RolloutPlan
from apps.releases.roles import APPROVERS, ensure_roles
from apps.signoffs.models import SignOffRule
from tests.checklists.helpers import make_template
from tests.factories import PlanFactory, UserFactory
from tests.pages.conftest import PASSWORD, error_rate_metric, shot

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_tab(browser, live_server):
    ensure_roles()  # a transactional test before this one may have flushed the migration's groups
    UserFactory(username="root", is_staff=True, is_superuser=True)
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    yield page
    context.close()


def add_inline(page, group_id: str):
    """Click the inline group's "Add another" and return the new form's name prefix."""
    group = page.locator(f"#{group_id}")
    group.locator(".add-row a").click()
    forms = group.locator(".inline-related:not(.empty-form), tr.form-row:not(.empty-form)")
    last = forms.last
    name = last.locator("[name$='-DELETE'], input, select").first.get_attribute("name")
    return name.rsplit("-", 1)[0]


def test_a_whole_plan_in_one_save_on_a_page_that_fits(admin_tab, live_server):
    page = admin_tab
    metric = error_rate_metric()
    template = make_template("Pre-flight", ChecklistKind.PRE_DEPLOYMENT, {"Checks": ["Ready"]})
    exit_list = make_template("Canary exit", ChecklistKind.STAGE_EXIT, {"Exit": ["p95 ok"]})
    approvers = Group.objects.get(name=APPROVERS)

    page.goto(f"{live_server.url}/admin/releases/rolloutplan/add/")
    page.fill("#id_name", "Canary then all")
    page.fill("#id_slug", "canary-then-all")
    for index, (name, pct) in enumerate([("canary", "5"), ("all", "100")]):
        prefix = add_inline(page, "stages-group")
        page.fill(f"[name='{prefix}-position']", str(index))
        page.fill(f"[name='{prefix}-name']", name)
        page.fill(f"[name='{prefix}-traffic_percentage']", pct)
    prefix = add_inline(page, "criteria-group")
    page.select_option(f"[name='{prefix}-metric']", str(metric.pk))
    page.select_option(f"[name='{prefix}-comparator']", ">")
    page.fill(f"[name='{prefix}-warning_threshold']", "0.02")
    page.fill(f"[name='{prefix}-critical_threshold']", "0.05")
    prefix = add_inline(page, "checklists-group")
    page.select_option(f"[name='{prefix}-template']", str(template.pk))
    # A stage-exit checklist and a stage's sign-off rule on a stage typed in above, unsaved yet:
    # the options are named after the rows as typed.
    prefix = add_inline(page, "checklists-group")
    page.select_option(f"[name='{prefix}-template']", str(exit_list.pk))
    canary_option = re.compile(r"^New stage row \d+: canary \(5 %\)$")
    stage_labels = page.locator(f"[name='{prefix}-stage_template'] option").all_inner_texts()
    canary_label = next(label for label in stage_labels if canary_option.match(label))
    page.select_option(f"[name='{prefix}-stage_template']", label=canary_label)
    prefix = add_inline(page, "signoff_rules-group")
    page.select_option(f"#id_{prefix}-groups_from", str(approvers.pk))
    page.locator(f"#id_{prefix}-groups_add").click()
    prefix = add_inline(page, "signoff_rules-group")
    page.select_option(f"[name='{prefix}-stage_template']", label=canary_label)
    page.select_option(f"#id_{prefix}-groups_from", str(approvers.pk))
    page.locator(f"#id_{prefix}-groups_add").click()
    shot(page, "admin-plan-add-1366")
    page.locator("input[name='_continue']").click()

    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    plan = RolloutPlan.objects.get(name="Canary then all")
    assert list(plan.stages.order_by("position").values_list("name", flat=True)) == [
        "canary",
        "all",
    ]
    criterion = MetricCriterion.objects.get(plan=plan)
    assert (criterion.warning_threshold, criterion.critical_threshold) == (0.02, 0.05)
    assert PlanChecklist.objects.filter(plan=plan, template=template).exists()
    canary = plan.stages.get(name="canary")
    assert PlanChecklist.objects.get(plan=plan, template=exit_list).stage_template == canary
    rule = SignOffRule.objects.get(plan=plan, stage_template=None)
    assert list(rule.groups.all()) == [approvers]
    assert list(SignOffRule.objects.get(plan=plan, stage_template=canary).groups.all()) == [
        approvers
    ]

    # The change page fits the window; every inline heading reads as written.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    headings = [h.inner_text() for h in page.locator(".inline-group h2").all()]
    assert "SIGN-OFF RULES (COPIED ONTO RELEASES REGISTERED AFTER THE CHANGE)" in [
        h.upper() for h in headings
    ]
    assert not any(h.upper().endswith(")S") for h in headings), headings
    shot(page, "admin-plan-change-1366")


def test_the_criterion_stage_list_names_each_stage_by_its_plan(admin_tab, live_server):
    PlanFactory(slug="alpha", name="Alpha", stages=[("25%", 25, timedelta(0), False)])
    PlanFactory(slug="beta", name="Beta", stages=[("canary", 10, timedelta(0), False)])
    page = admin_tab
    page.goto(f"{live_server.url}/admin/checks/metriccriterion/add/")
    options = [
        o.inner_text() for o in page.locator("#id_stage_template option").all() if o.inner_text()
    ]
    assert "Alpha · 1. 25%" in options
    assert "Beta · 1. canary (10 %)" in options
    assert not any(re.search(r"(\d+%) \(\1\)", o) for o in options), options


def test_a_level_that_pages_nobody_is_saved_with_a_warning(admin_tab, live_server):
    page = admin_tab
    page.goto(f"{live_server.url}/admin/incidents/escalationpolicy/add/")
    page.fill("#id_name", "Nobody home")
    prefix = add_inline(page, "levels-group")
    page.fill(f"[name='{prefix}-position']", "1")
    page.fill(f"[name='{prefix}-after_minutes']", "0")
    page.locator("input[name='_continue']").click()

    warning = page.locator(".messagelist .warning")
    expect(warning).to_contain_text("L1 of Nobody home pages nobody")
    assert EscalationPolicy.objects.get(name="Nobody home").levels.count() == 1
    shot(page, "admin-level-pages-nobody-1366")
