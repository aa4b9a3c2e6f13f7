"""Building checklist templates and attaching them to plans, for the checklist tests."""

from __future__ import annotations

from apps.checklists.choices import ChecklistKind
from apps.checklists.models import ChecklistTemplate, PlanChecklist
from apps.checklists.runbook import DetectedChecklist, DetectedItem, DetectedSection
from apps.checklists.services import save_template_version
from apps.core.actors import Actor
from apps.releases.models import RolloutPlan

# An item: "text", or (text, key), or (text, key, required)
ItemSpec = str | tuple


def make_template(
    name: str,
    kind: str = ChecklistKind.PRE_DEPLOYMENT,
    sections: dict[str, list[ItemSpec]] | None = None,
) -> ChecklistTemplate:
    """Save a template (the next version if the name exists) the way an import does."""
    sections = sections or {"Checks": ["Code review completed", ("All tests pass", "tests")]}
    detected = DetectedChecklist(
        name=name,
        heading=name,
        kind=kind,
        sections=[
            DetectedSection(section, [_item(spec) for spec in specs])
            for section, specs in sections.items()
        ],
    )
    return save_template_version(detected, actor=Actor.system("tests")).template


def _item(spec: ItemSpec) -> DetectedItem:
    if isinstance(spec, str):
        return DetectedItem(spec)
    text, key, *rest = spec
    return DetectedItem(text, key=key, required=rest[0] if rest else True)


def link(plan: RolloutPlan, template: ChecklistTemplate, stage: str | None = None) -> PlanChecklist:
    """Make the plan apply the template (at the exit of the named stage for stage-exit ones)."""
    stage_template = plan.stages.get(name=stage) if stage else None
    pc = PlanChecklist(plan=plan, template=template, stage_template=stage_template)
    pc.full_clean()
    pc.save()
    return pc
