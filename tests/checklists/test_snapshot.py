"""A release's checklists are its own copy: later template edits never reach it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.checklists.choices import ChecklistKind
from apps.checklists.models import PlanChecklist, TemplateItem
from tests.factories import PlanFactory, make_release

from .helpers import link, make_template

pytestmark = pytest.mark.django_db


def items_of(release) -> list[tuple[str, str, str, bool, str]]:
    return [
        (c.name, i.section, i.text, i.required, i.key)
        for c in release.checklists.order_by("position")
        for i in c.items.order_by("position")
    ]


def test_editing_a_template_after_a_release_leaves_its_checklist_unchanged(
    service, production
) -> None:
    plan = PlanFactory(slug="p")
    template = make_template(
        "Pre-flight",
        sections={"Code": [("Tests pass", "tests"), "Review done"], "Ops": ["Backups checked"]},
    )
    link(plan, template)
    release = make_release(service=service, environment=production, plan=plan)
    before = items_of(release)
    assert before == [
        ("Pre-flight", "Code", "Tests pass", True, "tests"),
        ("Pre-flight", "Code", "Review done", True, ""),
        ("Pre-flight", "Ops", "Backups checked", True, ""),
    ]

    # Every kind of edit a release manager can make in the admin.
    template.items.filter(text="Tests pass").update(text="All 3 suites pass", key="suites")
    template.items.filter(text="Review done").update(required=False)
    template.items.filter(text="Backups checked").delete()
    section = template.sections.get(name="Code")
    section.name = "Quality"
    section.save()
    TemplateItem.objects.create(template=template, section=section, position=9, text="New step")
    template.name = "Renamed"
    template.kind = ChecklistKind.STAGE_EXIT
    template.save()

    release.refresh_from_db()
    assert items_of(release) == before
    assert release.checklists.get().kind == ChecklistKind.PRE_DEPLOYMENT

    # The next release is made from the template as it is now.
    PlanChecklist.objects.filter(plan=plan).delete()
    template.kind = ChecklistKind.PRE_DEPLOYMENT
    template.save()
    link(plan, template)
    later = make_release(service=service, environment=production, plan=plan)
    assert items_of(later) == [
        ("Renamed", "Quality", "All 3 suites pass", True, "suites"),
        ("Renamed", "Quality", "Review done", False, ""),
        ("Renamed", "Quality", "New step", True, ""),
    ]


def test_a_release_gets_only_its_plans_checklists_each_stage_exit_at_its_stage(
    service, production
) -> None:
    plan = PlanFactory(slug="mine")
    other_plan = PlanFactory(slug="theirs")
    link(plan, make_template("Weekly", ChecklistKind.PERIODIC_REVIEW, {"W": ["Look at trends"]}))
    link(plan, make_template("Half exit", ChecklistKind.STAGE_EXIT, {"H": ["Ask QA"]}), "half")
    link(
        plan, make_template("Canary exit", ChecklistKind.STAGE_EXIT, {"C": ["Check p95"]}), "canary"
    )
    link(plan, make_template("Pre", sections={"P": ["Freeze merges"]}))
    link(other_plan, make_template("Not mine", sections={"X": ["Nope"]}))

    release = make_release(service=service, environment=production, plan=plan)
    checklists = list(release.checklists.select_related("stage").order_by("position"))
    assert [(c.name, c.kind, c.stage.name if c.stage else None) for c in checklists] == [
        ("Pre", "pre_deployment", None),
        ("Canary exit", "stage_exit", "canary"),
        ("Half exit", "stage_exit", "half"),
        ("Weekly", "periodic_review", None),
    ]
    assert [c.opened_at is not None for c in checklists] == [True, True, True, False]
    assert all(c.stage is None or c.stage.release_id == release.pk for c in checklists)

    again = make_release(
        service=service, environment=production, plan=plan, version=release.version
    )
    assert again.pk == release.pk and again.checklists.count() == 4  # registered twice: one copy


def test_plan_links_are_validated() -> None:
    plan = PlanFactory(slug="v")
    other = PlanFactory(slug="w")
    exit_template = make_template("Exit", ChecklistKind.STAGE_EXIT)
    with pytest.raises(ValidationError, match="needs its stage"):
        link(plan, exit_template)
    with pytest.raises(ValidationError, match="has no stage"):
        link(plan, make_template("Pre"), stage="canary")
    pc = PlanChecklist(
        plan=plan, template=exit_template, stage_template=other.stages.get(name="canary")
    )
    with pytest.raises(ValidationError, match="Choose a stage of this plan"):
        pc.full_clean()
    assert PlanChecklist.objects.count() == 0
