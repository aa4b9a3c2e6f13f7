"""Admin: rules inline on plans, sign-offs read-only with filters, freeze windows "active now"."""

from __future__ import annotations

from datetime import time

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.signoffs import services
from apps.signoffs.choices import Decision, FreezeRecurrence, QuorumMode, Weekday
from apps.signoffs.models import FreezeWindow, SignOffRule

from .conftest import EM, ONCALL, PRODUCT, member

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(response) -> dict[str, object]:
    """The POST a browser would send back for the change form as rendered."""
    data: dict[str, object] = {}

    def add(form) -> None:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            if isinstance(value, list | tuple):
                value = [v for v in value if v not in (None, "")]
            data[form.add_prefix(name)] = value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for key, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{key}"] = value
        for form in formset.forms:
            add(form)
    return data


def test_rules_are_edited_inline_on_the_plan(plan, groups, rita):
    client = logged_in(rita)
    change = reverse("admin:releases_rolloutplan_change", args=[plan.pk])
    response = client.get(change)
    assert response.status_code == 200
    assert "sign-off rule" in response.content.decode()
    data = form_data(response)
    prefix = "signoff_rules"
    half = plan.stages.get(name="half")
    data.update(
        {
            f"{prefix}-TOTAL_FORMS": 2,
            f"{prefix}-0-stage_template": "",
            f"{prefix}-0-groups": [groups[ONCALL].pk],
            f"{prefix}-0-quorum": QuorumMode.EACH_GROUP,
            f"{prefix}-0-approvals_needed": 1,
            f"{prefix}-1-stage_template": half.pk,
            f"{prefix}-1-groups": [groups[EM].pk, groups[PRODUCT].pk],
            f"{prefix}-1-quorum": QuorumMode.COUNT,
            f"{prefix}-1-approvals_needed": 2,
            f"{prefix}-1-valid_for": "2 00:00:00",
        }
    )
    response = client.post(change, data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    start = SignOffRule.objects.get(stage_template__isnull=True)
    exit_half = SignOffRule.objects.get(stage_template__isnull=False)
    assert start.stage_template is None and list(start.groups.all()) == [groups[ONCALL]]
    assert exit_half.stage_template == half and exit_half.approvals_needed == 2
    assert exit_half.describe() == "2 gos in all from members of: Engineering managers, Product"

    # The gate choices are the start, this plan's stages, and the page's blank stage rows.
    choices = client.get(change).context["inline_admin_formsets"]
    rules = next(i for i in choices if i.formset.prefix == prefix)
    field = rules.formset.forms[0].fields["stage_template"]
    assert set(field.saved.values()) == set(plan.stages.all())
    offered = [value for value, _ in field.choices]
    assert offered[0] == "" and {str(s.pk) for s in plan.stages.all()} <= set(offered)
    assert all(v.startswith("new-") for v in offered[1 + plan.stages.count() :])


def test_sign_offs_are_read_only_and_cost_the_same_for_many(
    running, rita, groups, erin, django_assert_num_queries
):
    services.sign(running, user=erin, decision=Decision.GO)
    client = logged_in(rita)
    url = reverse("admin:signoffs_signoff_changelist")
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        response = client.get(url + "?decision__exact=go")
    assert response.status_code == 200
    for n in range(5):
        services.sign(
            running, user=member(f"p{n}", groups[PRODUCT]), decision=Decision.NO_GO, comment="no"
        )
    with django_assert_num_queries(len(one.captured_queries)):
        response = client.get(url + "?decision__exact=go")
    assert response.context["cl"].result_count == 1
    response = client.get(url + "?state=standing")
    assert response.context["cl"].result_count == 6

    assert client.get(reverse("admin:signoffs_signoff_add")).status_code == 403
    signoff = running.signoffs.first()
    page = client.get(reverse("admin:signoffs_signoff_change", args=[signoff.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()


def test_freeze_windows_show_whether_they_are_active_now(rita, django_assert_num_queries):
    client = logged_in(rita)
    url = reverse("admin:signoffs_freezewindow_changelist")
    FreezeWindow.objects.create(
        name="Weekend",
        recurrence=FreezeRecurrence.WEEKLY,
        weekly_start_day=Weekday.FRIDAY,
        weekly_start_time=time(16),
        weekly_end_day=Weekday.MONDAY,
        weekly_end_time=time(8),
        time_zone="Europe/Berlin",
    )
    with time_machine.travel("2026-10-24 12:00:00+00:00", tick=False):
        client.get(url)
        with CaptureQueriesContext(connection) as one:
            response = client.get(url)
        html = response.content.decode()
        assert "every Friday 16:00 – Monday 08:00 Europe/Berlin" in html
        assert "all services in all environments" in html
        assert 'alt="True"' in html
        for n in range(4):
            FreezeWindow.objects.create(
                name=f"Later {n}",
                starts_at="2027-01-01T00:00:00Z",
                ends_at="2027-01-02T00:00:00Z",
            )
        with django_assert_num_queries(len(one.captured_queries)):
            response = client.get(url)
        assert response.content.decode().count('alt="False"') == 4


def test_roles_hold_the_sign_off_permissions(rita, alice, victor):
    assert rita.has_perm("signoffs.add_freezewindow")
    assert rita.has_perm("signoffs.change_signoffrule")
    assert alice.has_perm("signoffs.view_signoff") and not alice.has_perm(
        "signoffs.add_signoffrule"
    )
    assert victor.has_perm("signoffs.view_freezewindow")
    assert not victor.has_perm("signoffs.change_freezewindow")


def test_two_rules_on_one_gate_are_refused_in_the_form(plan, groups, rita):
    client = logged_in(rita)
    change = reverse("admin:releases_rolloutplan_change", args=[plan.pk])
    data = form_data(client.get(change))
    for n in (0, 1):
        data.update(
            {
                f"signoff_rules-{n}-stage_template": "",
                f"signoff_rules-{n}-groups": [groups[ONCALL].pk],
                f"signoff_rules-{n}-quorum": QuorumMode.EACH_GROUP,
                f"signoff_rules-{n}-approvals_needed": 1,
            }
        )
    data["signoff_rules-TOTAL_FORMS"] = 2
    response = client.post(change, data)
    assert response.status_code == 200
    assert "Only one sign-off rule per gate: the start has two." in response.content.decode()
    assert not SignOffRule.objects.exists()
