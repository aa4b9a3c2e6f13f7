"""Admin forms: the runbook upload, its preview (choose, rename, re-kind, re-key), item ticks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django import forms
from django.core import signing

from .choices import ChecklistKind
from .models import KEY_MAX_LENGTH, ChecklistItem, key_validator
from .runbook import (
    MAX_BYTES,
    NAME_MAX_LENGTH,
    DetectedChecklist,
    DetectedSection,
    ParsedRunbook,
    RunbookError,
    parse,
    too_large,
)

PAYLOAD_SALT = "checklists.runbook-import"
# The preview carries the parsed runbook back signed; an old preview asks for the file again.
PAYLOAD_MAX_AGE = 6 * 3600


def sign_runbook(parsed: ParsedRunbook) -> str:
    return signing.dumps(parsed.to_payload(), salt=PAYLOAD_SALT, compress=True)


def unsign_runbook(payload: str) -> ParsedRunbook:
    """The runbook a preview was made from; raises signing.BadSignature if altered or stale."""
    data = signing.loads(payload, salt=PAYLOAD_SALT, max_age=PAYLOAD_MAX_AGE)
    return ParsedRunbook.from_payload(data)


class RunbookUploadForm(forms.Form):
    """Step 1: the Markdown file, and optionally the template name."""

    file = forms.FileField(label="Runbook (Markdown)", help_text="UTF-8 text, up to 2 MB.")
    name = forms.CharField(
        required=False,
        max_length=NAME_MAX_LENGTH,
        help_text="Leave empty to name templates after the runbook's title and headings.",
    )

    parsed: ParsedRunbook | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is None:
            return cleaned
        if upload.size > MAX_BYTES:
            self.add_error("file", too_large(upload.name, upload.size))
            return cleaned
        try:
            self.parsed = parse(upload.read(), source=upload.name, name=cleaned.get("name"))
        except RunbookError as exc:
            self.add_error("file", exc.message)
        return cleaned


class KeyField(forms.CharField):
    """An automated-check key, lower-cased; empty makes the item manual."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            required=False, max_length=KEY_MAX_LENGTH, validators=[key_validator], **kwargs
        )

    def to_python(self, value: Any) -> str:
        return super().to_python(value).lower()


class ImportPreviewForm(forms.Form):
    """Step 2: which detected checklists to import, and their names, kinds and item keys."""

    payload = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, parsed: ParsedRunbook, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parsed = parsed
        self.fields["payload"].initial = sign_runbook(parsed)
        for c, checklist in enumerate(parsed.checklists):
            self.fields[f"c{c}-include"] = forms.BooleanField(
                required=False, initial=True, label="Import"
            )
            self.fields[f"c{c}-name"] = forms.CharField(
                required=False, max_length=NAME_MAX_LENGTH, initial=checklist.name, label="Name"
            )
            self.fields[f"c{c}-kind"] = forms.ChoiceField(
                choices=ChecklistKind.choices, initial=checklist.kind, label="Kind"
            )
            for s, section in enumerate(checklist.sections):
                for i, item in enumerate(section.items):
                    self.fields[f"c{c}-s{s}-i{i}-key"] = KeyField(initial=item.key, label="Key")

    def rows(self) -> list[dict[str, Any]]:
        """The bound fields laid out like the runbook, for the template."""
        return [
            {
                "checklist": checklist,
                "include": self[f"c{c}-include"],
                "name": self[f"c{c}-name"],
                "kind": self[f"c{c}-kind"],
                "sections": [
                    {
                        "name": section.name,
                        "items": [
                            {"item": item, "key": self[f"c{c}-s{s}-i{i}-key"]}
                            for i, item in enumerate(section.items)
                        ],
                    }
                    for s, section in enumerate(checklist.sections)
                ],
            }
            for c, checklist in enumerate(self.parsed.checklists)
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        chosen = [c for c in range(len(self.parsed.checklists)) if cleaned.get(f"c{c}-include")]
        if not chosen:
            raise forms.ValidationError("Choose at least one checklist to import.")
        names: set[str] = set()
        for c in chosen:
            name = (cleaned.get(f"c{c}-name") or "").strip()
            if not name:
                self.add_error(f"c{c}-name", "Give the checklist a name.")
            elif name in names:
                self.add_error(f"c{c}-name", "Two chosen checklists have this name.")
            names.add(name)
        return cleaned

    def chosen(self) -> list[DetectedChecklist]:
        """The chosen checklists with the edits applied (call after is_valid)."""
        result = []
        for c, checklist in enumerate(self.parsed.checklists):
            if not self.cleaned_data.get(f"c{c}-include"):
                continue
            sections = [
                DetectedSection(
                    section.name,
                    [
                        replace(item, key=self.cleaned_data[f"c{c}-s{s}-i{i}-key"])
                        for i, item in enumerate(section.items)
                    ],
                )
                for s, section in enumerate(checklist.sections)
            ]
            result.append(
                replace(
                    checklist,
                    name=self.cleaned_data[f"c{c}-name"].strip(),
                    kind=self.cleaned_data[f"c{c}-kind"],
                    sections=sections,
                )
            )
        return result


class ItemTickForm(forms.ModelForm):
    """One item on its checklist's page: tick or untick it, with a comment and evidence."""

    done = forms.BooleanField(required=False)

    class Meta:
        model = ChecklistItem
        fields = ["done", "comment", "evidence_url"]
        widgets = {
            "comment": forms.TextInput(attrs={"size": 30}),
            "evidence_url": forms.URLInput(attrs={"size": 30}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.setdefault("done", self.instance.is_done)
