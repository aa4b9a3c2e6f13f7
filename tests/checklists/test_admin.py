"""Admin: progress in the changelists, filters, ticking inline, bulk "mark done", runbook upload."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.checklists.choices import ChecklistKind, ItemState
from apps.checklists.models import (
    Checklist,
    ChecklistItem,
    ChecklistTemplate,
    PlanChecklist,
    TemplateItem,
    TemplateSection,
)
from apps.checklists.runbook import MAX_BYTES
from apps.checklists.services import set_item_state
from apps.core.actors import Actor
from apps.releases.choices import EventVerb
from apps.rollouts import gate
from tests.factories import PlanFactory, ServiceFactory, make_release

from .helpers import link, make_template
from .test_runbook import AI_ORCHESTRA, DCI

pytestmark = pytest.mark.django_db

CHECKLISTS = reverse("admin:checklists_checklist_changelist")
ITEMS = reverse("admin:checklists_checklistitem_changelist")
TEMPLATES = reverse("admin:checklists_checklisttemplate_changelist")
IMPORT = reverse("admin:checklists_checklisttemplate_import")
SYSTEM = Actor.system("tests")


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def plan(db):
    plan = PlanFactory(slug="admin-plan")
    twelve = {"Build": [f"Step {n}" for n in range(1, 9)], "Ops": ["A", "B", "C", "D"]}
    link(plan, make_template("Twelve steps", sections=twelve))
    link(plan, make_template("Canary exit", ChecklistKind.STAGE_EXIT, {"C": ["p95 ok"]}), "canary")
    link(plan, make_template("Later", ChecklistKind.POST_DEPLOYMENT, {"L": ["Smoke"]}))
    return plan


def release_with_progress(plan, done: int, **kwargs: Any):
    release = make_release(plan=plan, **kwargs)
    twelve = release.checklists.get(name="Twelve steps")
    for item in twelve.items.order_by("position")[:done]:
        set_item_state(item, done=True, actor=SYSTEM)
    return release


def row_of(response, text: str) -> str:
    match = re.search(rf"<tr>(?:(?!</tr>).)*{re.escape(text)}.*?</tr>", response.text, re.S)
    assert match, f"no row with {text!r}"
    return match.group(0)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- release checklists -------------------------------------------------------------------------


def test_checklist_changelist_shows_progress_in_a_fixed_number_of_queries(
    rita, plan, production, django_assert_num_queries
) -> None:
    client = logged_in(rita)
    service = ServiceFactory(slug="svc-a")
    release = release_with_progress(plan, 7, service=service, environment=production)
    response = client.get(CHECKLISTS, {"release__service__id__exact": service.pk})
    row = row_of(response, f"/releases/release/{release.pk}/change/")
    assert "7/12" in row and ">5<" in row  # done/total, required still open

    with CaptureQueriesContext(connection) as few:
        assert client.get(CHECKLISTS).context["cl"].result_count == 3
    for n in range(4):
        release_with_progress(plan, n, service=ServiceFactory(slug=f"svc-{n}"))
    with django_assert_num_queries(len(few)):
        assert client.get(CHECKLISTS).context["cl"].result_count == 15


def test_checklists_filter_by_kind_and_completeness(rita, plan, service, production) -> None:
    client = logged_in(rita)
    complete = release_with_progress(plan, 12, service=service, environment=production)
    partial = release_with_progress(plan, 3, service=service, environment=production)

    def names(**query: str) -> list[tuple[int, str]]:
        result = client.get(CHECKLISTS, query).context["cl"].result_list
        return sorted((c.release_id, c.name) for c in result)

    assert names(completeness="complete", kind__exact="pre_deployment") == [
        (complete.pk, "Twelve steps")
    ]
    assert names(completeness="incomplete", kind__exact="pre_deployment") == [
        (partial.pk, "Twelve steps")
    ]
    assert names(completeness="waiting") == [(complete.pk, "Later"), (partial.pk, "Later")]
    searched = client.get(CHECKLISTS, {"q": "Step 1"}).context["cl"].result_list
    assert sorted((c.release_id, c.item_done, c.item_total) for c in searched) == [
        (complete.pk, 12, 12),
        (partial.pk, 3, 12),
    ]  # a search across items neither duplicates rows nor skews the counts
    assert names(kind__exact="stage_exit") == [
        (complete.pk, "Canary exit"),
        (partial.pk, "Canary exit"),
    ]


def test_bulk_mark_done_records_the_actor(rita, plan, service, production) -> None:
    client = logged_in(rita)
    release = release_with_progress(plan, 2, service=service, environment=production)
    chosen = release.checklists.exclude(kind=ChecklistKind.STAGE_EXIT)
    response = client.post(
        CHECKLISTS,
        {"action": "mark_done_action", "_selected_action": [c.pk for c in chosen]},
        follow=True,
    )
    assert messages_of(response) == [
        "Marked 10 item(s) done as rita. 2 were already done. "
        "1 belong to checklists that open when the release completes."
    ]
    twelve = release.checklists.get(name="Twelve steps")
    assert not twelve.items.filter(state=ItemState.OPEN).exists()
    assert set(twelve.items.values_list("actor_name", flat=True)) == {"system:tests", "rita"}
    assert twelve.items.filter(actor_user=rita).count() == 10
    rita_changes = ChecklistItem.objects.filter(history__actor_user=rita).count()
    assert rita_changes == 10
    done_events = release.events.filter(verb=EventVerb.CHECKLIST_ITEM_DONE, actor_name="rita")
    assert done_events.count() == 10
    # The canary exit was not selected and stays open.
    assert release.checklists.get(kind=ChecklistKind.STAGE_EXIT).items.get().state == "open"


def test_viewers_see_checklists_but_cannot_tick(victor, plan, service, production) -> None:
    client = logged_in(victor)
    release = release_with_progress(plan, 0, service=service, environment=production)
    response = client.get(CHECKLISTS)
    assert response.status_code == 200
    assert "mark_done_action" not in response.text
    checklist = release.checklists.first()
    page = client.get(reverse("admin:checklists_checklist_change", args=[checklist.pk]))
    assert page.status_code == 200 and 'name="items-0-done"' not in page.text
    refused = client.post(
        CHECKLISTS, {"action": "mark_done_action", "_selected_action": [checklist.pk]}, follow=True
    )
    assert refused.status_code == 200 and messages_of(refused) == []  # no such action for him
    assert not ChecklistItem.objects.filter(state=ItemState.DONE).exists()


def form_values(form: Any) -> dict[str, Any]:
    """What a browser posts for a form as shown: unchecked boxes and empty values are absent."""
    values = {form.add_prefix(name): form[name].value() for name in form.fields}
    return {k: v for k, v in values.items() if v is not None and v is not False and v != ""}


def formset_data(response) -> dict[str, Any]:
    """The POST a browser would send back for the change page's inline formsets, unchanged."""
    data: dict[str, Any] = {"_save": "Save"}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        for form in formset.forms:
            data |= form_values(form)
    return data


def test_ticking_and_unticking_inline_records_who_and_why(alice, plan, service, production) -> None:
    client = logged_in(alice)  # an approver may tick
    release = release_with_progress(plan, 0, service=service, environment=production)
    checklist = release.checklists.get(name="Twelve steps")
    url = reverse("admin:checklists_checklist_change", args=[checklist.pk])

    data = formset_data(client.get(url))
    data["items-0-done"] = "on"
    data["items-0-comment"] = "done on staging"
    data["items-0-evidence_url"] = "https://ci/run/9"
    assert client.post(url, data).status_code == 302
    first = checklist.items.get(position=0)
    assert (first.state, first.actor_name, first.comment, first.evidence_url) == (
        ItemState.DONE,
        "alice",
        "done on staging",
        "https://ci/run/9",
    )
    assert checklist.items.filter(state=ItemState.DONE).count() == 1  # nothing else touched

    data = formset_data(client.get(url))
    del data["items-0-done"]
    data["items-0-comment"] = "redo it"
    client.post(url, data)
    assert [(h.state, h.actor_name, h.comment) for h in first.history.order_by("id")] == [
        ("done", "alice", "done on staging"),
        ("open", "alice", "redo it"),
    ]


def test_a_checklist_not_yet_open_cannot_be_ticked_inline(rita, plan, service, production):
    client = logged_in(rita)
    release = release_with_progress(plan, 0, service=service, environment=production)
    later = release.checklists.get(name="Later")
    page = client.get(reverse("admin:checklists_checklist_change", args=[later.pk]))
    assert page.status_code == 200 and 'name="items-0-done"' not in page.text


def test_item_changelist_marks_selected_items_done(rita, plan, service, production) -> None:
    client = logged_in(rita)
    release = release_with_progress(plan, 0, service=service, environment=production)
    chosen = list(release.checklists.get(name="Twelve steps").items.order_by("position")[:3])
    response = client.get(ITEMS, {"state__exact": "open", "checklist__kind__exact": "stage_exit"})
    assert [i.text for i in response.context["cl"].result_list] == ["p95 ok"]
    response = client.post(
        ITEMS,
        {"action": "mark_done_action", "_selected_action": [i.pk for i in chosen]},
        follow=True,
    )
    assert messages_of(response) == ["Marked 3 item(s) done as rita."]
    assert ChecklistItem.objects.filter(state=ItemState.DONE, actor_user=rita).count() == 3
    item_page = client.get(reverse("admin:checklists_checklistitem_change", args=[chosen[0].pk]))
    assert item_page.status_code == 200 and "Marked done in bulk." in item_page.text


@pytest.fixture
def ci_release(service, production):
    """A planned release whose pre-flight mixes automated items (CI's) and manual ones."""
    plan = PlanFactory(slug="ci-plan")
    code = [("All tests pass", "tests"), ("Coverage > 80%", "coverage"), "Code review", "Runbook"]
    link(plan, make_template("Pre-flight", sections={"Code": code}))
    return make_release(plan=plan, service=service, environment=production)


def states(release) -> dict[str, str]:
    return dict(
        ChecklistItem.objects.filter(checklist__release=release).values_list("text", "state")
    )


def test_bulk_mark_done_ticks_manual_items_only_and_says_what_it_left_for_ci(
    rita, ci_release
) -> None:
    response = logged_in(rita).post(
        CHECKLISTS,
        {"action": "mark_done_action", "_selected_action": [ci_release.checklists.get().pk]},
        follow=True,
    )
    assert messages_of(response) == [
        "Marked 2 item(s) done as rita. 2 automated item(s) were left for CI, which ticks them "
        "when it reports their keys."
    ]
    assert states(ci_release) == {
        "All tests pass": "open",
        "Coverage > 80%": "open",
        "Code review": "done",
        "Runbook": "done",
    }
    # The gate still waits for CI's evidence.
    (blocker,) = gate.evaluate(ci_release).blockers
    assert "2 required items open: All tests pass; Coverage > 80%." in blocker.detail


def test_item_changelist_leaves_selected_automated_items_for_ci(rita, ci_release) -> None:
    chosen = ChecklistItem.objects.filter(checklist__release=ci_release)
    response = logged_in(rita).post(
        ITEMS,
        {"action": "mark_done_action", "_selected_action": [i.pk for i in chosen]},
        follow=True,
    )
    assert messages_of(response) == [
        "Marked 2 item(s) done as rita. 2 automated item(s) were left for CI, which ticks them "
        "when it reports their keys."
    ]
    assert chosen.filter(key="", state=ItemState.DONE).count() == 2
    assert not chosen.exclude(key="").filter(state=ItemState.DONE).exists()


def test_an_automated_item_cannot_be_ticked_inline(rita, ci_release) -> None:
    client = logged_in(rita)
    checklist = ci_release.checklists.get()
    url = reverse("admin:checklists_checklist_change", args=[checklist.pk])
    page = client.get(url)
    boxes = {
        form.instance.text: form.fields["done"].disabled
        for inline in page.context["inline_admin_formsets"]
        for form in inline.formset.forms
    }
    assert boxes == {
        "All tests pass": True,
        "Coverage > 80%": True,
        "Code review": False,
        "Runbook": False,
    }
    data = formset_data(page)
    data |= {"items-0-done": "on", "items-2-done": "on"}  # a crafted post ticking "All tests pass"
    assert client.post(url, data).status_code == 302
    assert states(ci_release)["All tests pass"] == "open"
    assert states(ci_release)["Code review"] == "done"


# --- templates and the plan inline ----------------------------------------------------------------


def test_template_changelist_counts_in_a_fixed_number_of_queries(
    rita, django_assert_num_queries
) -> None:
    client = logged_in(rita)
    make_template("One", sections={"S": [("Tests pass", "tests"), "Review"], "T": ["Ship"]})
    with CaptureQueriesContext(connection) as one:
        response = client.get(TEMPLATES)
    row = row_of(response, "One")
    assert re.findall(r'<td class="field-\w+_count">(\d+)</td>', row) == ["2", "3", "1", "0"]
    for n in range(5):
        make_template(f"More {n}")
    with django_assert_num_queries(len(one)):
        assert client.get(TEMPLATES).context["cl"].result_count == 6
    assert 'href="/admin/checklists/checklisttemplate/import/"' in response.text


def test_plans_choose_their_checklists_inline(rita) -> None:
    client = logged_in(rita)
    plan = PlanFactory(slug="inline")
    pre = make_template("Pre")
    exit_ = make_template("Exit", ChecklistKind.STAGE_EXIT)
    url = reverse("admin:releases_rolloutplan_change", args=[plan.pk])
    page = client.get(url)
    data = formset_data(page) | form_values(page.context["adminform"].form)
    prefix = next(
        i.formset.prefix
        for i in page.context["inline_admin_formsets"]
        if i.opts.model is PlanChecklist
    )
    canary = plan.stages.get(name="canary")
    data |= {
        f"{prefix}-TOTAL_FORMS": 2,
        f"{prefix}-0-template": pre.pk,
        f"{prefix}-1-template": exit_.pk,
    }
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "A stage-exit checklist needs its stage." in refused.text
    data[f"{prefix}-1-stage_template"] = canary.pk
    assert client.post(url, data).status_code == 302
    assert sorted(
        PlanChecklist.objects.filter(plan=plan).values_list("template__name", "stage_template")
    ) == [("Exit", canary.pk), ("Pre", None)]


# --- runbook upload with a preview ----------------------------------------------------------------


def upload(client: Client, filename: str, content: bytes, **fields: str):
    return client.post(IMPORT, {"file": SimpleUploadedFile(filename, content), **fields})


def test_upload_previews_then_saves_only_what_was_chosen_with_edits(rita) -> None:
    client = logged_in(rita)
    assert client.get(IMPORT).status_code == 200
    preview = upload(client, DCI.name, DCI.read_bytes(), name="DCI")
    assert preview.status_code == 200
    assert ChecklistTemplate.objects.count() == 0  # the preview saves nothing
    rows = preview.context["rows"]
    assert [(r["checklist"].name, r["checklist"].item_count) for r in rows] == [
        ("DCI: Pre-Deployment Checklist", 19),
        ("DCI: 24-Hour Post-Deployment Checklist", 5),
        ("DCI: Weekly Review Checklist", 5),
    ]
    assert "Infrastructure Readiness" in preview.text
    assert "ESLint validation passes (`npm run lint`)" in preview.text

    form = preview.context["form"]
    data = form_values(form)
    del data["c2-include"]  # not the weekly review
    data["c0-s0-i1-key"] = "Integration"  # lower-cased on save
    data["c0-s0-i3-key"] = ""  # lint becomes manual
    data["c1-name"] = "DCI post-deploy (24 h)"
    data["c1-kind"] = ChecklistKind.PERIODIC_REVIEW
    saved = client.post(IMPORT, data, follow=True)
    assert saved.redirect_chain[-1][0] == TEMPLATES
    assert messages_of(saved) == [
        "Imported DCI: Pre-Deployment Checklist (v1) [Pre-deployment], 19 items.",
        "Imported DCI post-deploy (24 h) (v1) [Periodic review], 5 items.",
    ]
    pre = ChecklistTemplate.objects.get(name="DCI: Pre-Deployment Checklist")
    assert list(pre.items.exclude(key="").values_list("key", flat=True)) == [
        "tests",
        "integration",
        "build",
        "security-scan",
    ]
    assert pre.created_by == "rita" and pre.source == DCI.name
    assert ChecklistTemplate.objects.get(name="DCI post-deploy (24 h)").kind == "periodic_review"
    assert ChecklistTemplate.objects.count() == 2

    # The same file again: the preview says what exists, and saving adds version 2.
    again = upload(client, DCI.name, DCI.read_bytes(), name="DCI")
    assert "Exists as v1: importing adds v2" in again.text
    form = again.context["form"]
    data = form_values(form)
    data.pop("c1-include"), data.pop("c2-include")
    client.post(IMPORT, data)
    assert ChecklistTemplate.objects.get(name=pre.name, is_current=True).version == 2


def test_preview_refuses_bad_choices_and_keys_and_saves_nothing(rita) -> None:
    client = logged_in(rita)
    preview = upload(client, AI_ORCHESTRA.name, AI_ORCHESTRA.read_bytes())
    form = preview.context["form"]
    data = form_values(form)

    nothing = {k: v for k, v in data.items() if k != "c0-include"}
    response = client.post(IMPORT, nothing)
    assert "Choose at least one checklist to import." in response.text

    bad_key = dict(data, **{"c0-s0-i0-key": "all tests!"})
    response = client.post(IMPORT, bad_key)
    assert "A key is lower-case letters and digits" in response.text

    no_name = dict(data, **{"c0-name": "  "})
    assert "Give the checklist a name." in client.post(IMPORT, no_name).text

    tampered = dict(data, payload=data["payload"][:-3] + "xyz")
    response = client.post(IMPORT, tampered, follow=True)
    assert messages_of(response) == [
        "The preview expired or was altered; upload the runbook again."
    ]
    assert ChecklistTemplate.objects.count() == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The submitted file is empty."),
        (b"# Notes\n\nNo tasks here.\n", "bad.md has no task-list items"),
        (b"\x00\x01" * 500, "bad.md looks like a binary file, not a Markdown runbook."),
        (b"- [ ] x\n" * (MAX_BYTES // 8 + 1), "runbooks up to 2 MB (2,097,152 bytes)"),
    ],
    ids=["empty", "no-tasks", "binary", "too-large"],
)
def test_bad_uploads_say_why_and_save_nothing(rita, content: bytes, message: str) -> None:
    client = logged_in(rita)
    make_template("Existing")
    before = [m.objects.count() for m in (ChecklistTemplate, TemplateSection, TemplateItem)]
    response = upload(client, "bad.md", content)
    assert response.status_code == 200
    assert message in response.text
    assert "rows" not in response.context  # still the upload page, no preview
    after = [m.objects.count() for m in (ChecklistTemplate, TemplateSection, TemplateItem)]
    assert after == before


def test_only_people_who_may_add_templates_can_import(alice) -> None:
    assert logged_in(alice).get(IMPORT).status_code == 403


def test_checklist_not_for_admin_add_or_delete(rita) -> None:
    assert logged_in(rita).get(reverse("admin:checklists_checklist_add")).status_code == 403
    assert Checklist.objects.count() == 0
