"""Naming a plan's stage from another inline of the plan page, including stages added with it.

A stage-exit checklist and a stage's sign-off rule point at a StageTemplate. On "Add rollout
plan" none exists yet: a plain foreign-key select offers nothing, so a plan with those rules
needed a second save. Here the select offers the plan's saved stages and the stage inline's
blank rows ("New stage row 2"); a row chosen that way is bound to the stage that row creates,
saved first (the stage inline comes first on the plan page). The plan admin links the formsets
(`link_stage_formsets`) before any of them is validated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from .models import StageTemplate

NEW_PREFIX = "new-"
# Rows offered on a page whose stage inline has fewer blank rows: "Add another stage" adds rows
# in the browser, and static/admin/js/plan-stage-choices.js names the options after them.
MIN_NEW_ROWS = 10


class StageChoiceField(forms.ChoiceField):
    """A saved stage of the plan (by id), a blank stage row of the page, or none."""

    def __init__(self, *, empty_label: str, **kwargs: Any) -> None:
        self.empty_label = empty_label
        self.saved: dict[str, StageTemplate] = {}
        self.new_rows: list[forms.ModelForm] = []
        super().__init__(choices=[("", empty_label)], required=False, **kwargs)

    def offer(self, saved: Iterable[StageTemplate], new_rows: list[forms.ModelForm]) -> None:
        self.saved = {str(stage.pk): stage for stage in saved}
        self.new_rows = new_rows
        count = max(len(new_rows), MIN_NEW_ROWS)
        self.choices = (
            [("", self.empty_label)]
            + [(pk, str(stage)) for pk, stage in self.saved.items()]
            + [(f"{NEW_PREFIX}{n}", f"New stage row {n}") for n in range(1, count + 1)]
        )

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, StageTemplate):
            return str(value.pk) if value.pk else ""
        return super().prepare_value(value)

    def to_python(self, value: Any) -> Any:
        return "" if value in self.empty_values else str(value)

    def validate(self, value: Any) -> None:
        pass  # clean() below says what is wrong, in words of the page

    def clean(self, value: Any) -> StageTemplate | None:
        value = self.to_python(value)
        if not value:
            return None
        if value in self.saved:
            return self.saved[value]
        if value.startswith(NEW_PREFIX) and value[len(NEW_PREFIX) :].isdigit():
            n = int(value[len(NEW_PREFIX) :])
            if 1 <= n <= len(self.new_rows):
                row = self.new_rows[n - 1]
                # The stage formset is validated first (it is the page's first inline).
                if row.has_changed() and not getattr(row, "cleaned_data", {}).get("DELETE"):
                    # The row's own instance: it has its id by the time this one is saved.
                    return row.instance
            raise ValidationError(
                f"New stage row {n} of the stages above is empty: fill it in, or choose "
                "another stage."
            )
        raise ValidationError("Choose a stage of this plan.")


class StageChoiceFormSet(BaseInlineFormSet):
    """An inline of the plan page whose `stage_template` may name a stage added on the page."""

    stage_empty_label = "No stage"

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        form.fields["stage_template"] = StageChoiceField(
            empty_label=self.stage_empty_label,
            label=form.fields["stage_template"].label,
            help_text=form.fields["stage_template"].help_text,
        )

    def use_stages(self, stages: BaseInlineFormSet) -> None:
        """Offer the stages of the plan page's stage inline (saved ones and blank rows)."""
        self._offered = (
            sorted((form.instance for form in stages.initial_forms), key=lambda s: s.position),
            stages.extra_forms,
        )
        for form in self.forms:
            form.fields["stage_template"].offer(*self._offered)

    @property
    def empty_form(self) -> forms.Form:
        # The template row "Add another" copies in the browser: the same options.
        form = super().empty_form
        if offered := getattr(self, "_offered", None):
            form.fields["stage_template"].offer(*offered)
        return form


def link_stage_formsets(formsets: list[Any]) -> None:
    """Give each StageChoiceFormSet on the plan page the page's stage formset."""
    stages = next((f for f in formsets if f.model is StageTemplate), None)
    if stages is None:
        return
    for formset in formsets:
        if isinstance(formset, StageChoiceFormSet):
            formset.use_stages(stages)


def stage_key(stage: StageTemplate | None) -> object:
    """A key telling stages apart, saved (by id) or not yet (by identity): None for no stage."""
    if stage is None:
        return None
    return stage.pk if stage.pk else ("new", id(stage))
