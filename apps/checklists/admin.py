"""Admin: checklist templates (with the runbook import), which plans use them, and each release's
checklists with their progress, ticks and the bulk "mark done" action."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.core.actors import Actor
from apps.releases.admin import RolloutPlanAdmin
from apps.releases.plan_stages import StageChoiceFormSet, stage_key

from .forms import ImportPreviewForm, ItemTickForm, RunbookUploadForm, unsign_runbook
from .models import (
    Checklist,
    ChecklistItem,
    ChecklistItemChange,
    ChecklistTemplate,
    PlanChecklist,
    TemplateItem,
    TemplateSection,
)
from .runbook import ParsedRunbook
from .services import TICK_PERM, ChecklistError, import_runbook, mark_done, set_item_state

# --- templates ---------------------------------------------------------------------------------


class TemplateSectionInline(admin.TabularInline):
    """A template's ordered sections."""

    model = TemplateSection
    ordering = ["position"]
    fields = ["position", "name"]
    extra = 0


class TemplateItemInline(admin.TabularInline):
    """A template's items; a key makes an item automated."""

    model = TemplateItem
    ordering = ["section__position", "position"]
    fields = ["section", "position", "text", "required", "key"]
    extra = 0
    formfield_overrides = {
        TemplateItem._meta.get_field("text").__class__: {"widget": forms.TextInput({"size": 70})}
    }

    def get_queryset(self, request: HttpRequest) -> QuerySet[TemplateItem]:
        return super().get_queryset(request).select_related("section")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "section":
            # Only this template's sections; new sections are saved first, then offered here.
            template_id = request.resolver_match.kwargs.get("object_id")
            kwargs["queryset"] = TemplateSection.objects.filter(template_id=template_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(admin.ModelAdmin):
    """Templates, one row per version; "Import runbook" turns a Markdown file into templates."""

    list_display = [
        "name",
        "version",
        "kind",
        "is_current",
        "section_count",
        "item_count",
        "automated_count",
        "plan_count",
        "created_at",
    ]
    list_filter = ["kind", "is_current"]
    search_fields = ["name", "source"]
    readonly_fields = ["version", "source", "created_by", "created_at"]
    fields = ["name", "kind", "description", "is_current", *readonly_fields]
    inlines = [TemplateSectionInline, TemplateItemInline]
    change_list_template = "admin/checklists/checklisttemplate/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChecklistTemplate]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                sections_total=Count("sections", distinct=True),
                items_total=Count("items", distinct=True),
                automated_total=Count("items", filter=~Q(items__key=""), distinct=True),
                plans_total=Count("plan_links", distinct=True),
            )
        )

    @admin.display(description="Sections", ordering="sections_total")
    def section_count(self, obj: ChecklistTemplate) -> int:
        return obj.sections_total

    @admin.display(description="Items", ordering="items_total")
    def item_count(self, obj: ChecklistTemplate) -> int:
        return obj.items_total

    @admin.display(description="Automated", ordering="automated_total")
    def automated_count(self, obj: ChecklistTemplate) -> int:
        return obj.automated_total

    @admin.display(description="Plans", ordering="plans_total")
    def plan_count(self, obj: ChecklistTemplate) -> int:
        return obj.plans_total

    def save_model(
        self, request: HttpRequest, obj: ChecklistTemplate, form: Any, change: bool
    ) -> None:
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.import_view)
        return [
            path("import/", view, name="checklists_checklisttemplate_import"),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a runbook, preview what it holds, then save the chosen checklists."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST" and "payload" in request.POST:
            try:
                parsed = unsign_runbook(request.POST["payload"])
            except signing.BadSignature:
                self.message_user(
                    request,
                    "The preview expired or was altered; upload the runbook again.",
                    messages.ERROR,
                )
                return self._upload_page(request, RunbookUploadForm())
            preview = ImportPreviewForm(parsed, request.POST)
            if preview.is_valid():
                try:
                    results = import_runbook(
                        parsed, actor=Actor.for_user(request.user), chosen=preview.chosen()
                    )
                except ValidationError as exc:
                    preview.add_error(None, exc.messages)
                except ChecklistError as exc:
                    preview.add_error(None, exc.message)
                else:
                    for result in results:
                        self.message_user(request, f"Imported {result.describe()}.")
                    return HttpResponseRedirect(
                        reverse("admin:checklists_checklisttemplate_changelist")
                    )
            return self._preview_page(request, preview)

        upload = RunbookUploadForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
        )
        if request.method == "POST" and upload.is_valid():
            return self._preview_page(request, ImportPreviewForm(upload.parsed))
        return self._upload_page(request, upload)

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        request.current_app = self.admin_site.name
        return {**self.admin_site.each_context(request), "title": title, "opts": self.opts}

    def _upload_page(self, request: HttpRequest, form: RunbookUploadForm) -> TemplateResponse:
        context = {**self._context(request, "Import a runbook"), "form": form}
        return TemplateResponse(
            request, "admin/checklists/checklisttemplate/import_upload.html", context
        )

    def _preview_page(self, request: HttpRequest, form: ImportPreviewForm) -> TemplateResponse:
        parsed: ParsedRunbook = form.parsed
        names = [c.name for c in parsed.checklists]
        current = {
            t.name: t for t in ChecklistTemplate.objects.filter(name__in=names, is_current=True)
        }
        rows = form.rows()
        for row in rows:
            row["current"] = current.get(row["checklist"].name)
        context = {
            **self._context(request, f"Import {parsed.source}: choose what to save"),
            "form": form,
            "parsed": parsed,
            "rows": rows,
        }
        return TemplateResponse(
            request, "admin/checklists/checklisttemplate/import_preview.html", context
        )


# --- which templates a plan uses ---------------------------------------------------------------


class PlanChecklistFormSet(StageChoiceFormSet):
    """A plan's checklists; a stage-exit one may name a stage added on the same page."""

    stage_empty_label = "— (pre-deployment or post-completion)"

    def clean(self) -> None:
        super().clean()
        seen: set[tuple[object, object]] = set()
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or data.get("template") is None:
                continue
            key = (data["template"].pk, stage_key(data.get("stage_template")))
            if key in seen:
                raise ValidationError(f"{data['template']} is listed twice for the same stage.")
            seen.add(key)


class PlanChecklistInline(admin.TabularInline):
    """The checklists a plan applies: pre-deployment, a stage's exit, or after completion."""

    model = PlanChecklist
    formset = PlanChecklistFormSet
    fields = ["template", "stage_template"]
    extra = 0
    verbose_name = "checklist"
    verbose_name_plural = "Checklists (pre-deployment gates start; stage exit gates leaving it)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[PlanChecklist]:
        return super().get_queryset(request).select_related("template", "stage_template")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "template":
            kwargs["queryset"] = ChecklistTemplate.objects.filter(is_current=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


RolloutPlanAdmin.inlines = [*RolloutPlanAdmin.inlines, PlanChecklistInline]


# --- a release's checklists --------------------------------------------------------------------


class CompletenessFilter(admin.SimpleListFilter):
    """Complete (no required item open), incomplete, or not open yet."""

    title = "completeness"
    parameter_name = "completeness"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("complete", "Complete"),
            ("incomplete", "Required items open"),
            ("waiting", "Not open yet (opens on completion)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.value() == "complete":
            return queryset.filter(opened_at__isnull=False, required_open=0)
        if self.value() == "incomplete":
            return queryset.filter(opened_at__isnull=False, required_open__gt=0)
        if self.value() == "waiting":
            return queryset.filter(opened_at__isnull=True)
        return None


def _who_when(item: ChecklistItem | ChecklistItemChange, when: Any) -> str:
    if not item.actor_name:
        return "—"
    return f"{item.actor_name}, {when:%Y-%m-%d %H:%M}" if when else item.actor_name


class InlineTickForm(ItemTickForm):
    """ItemTickForm with an open automated item's box disabled: CI ticks it, not the person
    on this page (services.left_for_ci refuses it anyway); a done one may still be unticked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.is_automated and not self.instance.is_done:
            self.fields["done"].disabled = True


class ChecklistItemInline(admin.TabularInline):
    """The items on their checklist's page: tick or untick, with a comment and evidence URL."""

    model = ChecklistItem
    form = InlineTickForm
    fields = ["section", "text", "kind_of_item", "done", "comment", "evidence_url", "last_change"]
    readonly_fields = ["section", "text", "kind_of_item", "last_change"]
    ordering = ["position"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Checklist | None = None) -> bool:
        # A checklist that opens on completion cannot be ticked before it opens.
        return request.user.has_perm(TICK_PERM) and (obj is None or obj.is_open)

    @admin.display(description="Item")
    def kind_of_item(self, obj: ChecklistItem) -> str:
        what = f"automated: {obj.key}" if obj.key else "manual"
        return what if obj.required else f"{what}, optional"

    @admin.display(description="Last change")
    def last_change(self, obj: ChecklistItem) -> str:
        return _who_when(obj, obj.changed_at)


def _mark_done(model_admin: admin.ModelAdmin, request: HttpRequest, items: QuerySet) -> None:
    """The bulk "mark done" of both changelists: tick, as the user, and say what happened."""
    actor = Actor.for_user(request.user)
    try:
        result = mark_done(items, actor=actor, comment="Marked done in bulk.")
    except ChecklistError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return
    text = f"Marked {result.done} item(s) done as {actor.name}."
    if result.already_done:
        text += f" {result.already_done} were already done."
    if result.not_open:
        text += f" {result.not_open} belong to checklists that open when the release completes."
    if result.left_for_ci:
        text += (
            f" {result.left_for_ci} automated item(s) were left for CI, which ticks them when it "
            "reports their keys."
        )
    model_admin.message_user(request, text, messages.SUCCESS)


@admin.register(Checklist)
class ChecklistAdmin(admin.ModelAdmin):
    """Each release's checklists: progress, filters, items inline, bulk "mark done"."""

    list_display = [
        "name",
        "release_link",
        "kind",
        "stage",
        "progress",
        "required_open_count",
        "opened_at",
    ]
    list_display_links = ["name"]
    list_filter = ["kind", CompletenessFilter, "release__service", "release__environment"]
    list_select_related = ["release__service", "release__environment", "stage"]
    search_fields = ["name", "release__version", "release__service__name", "items__text"]
    readonly_fields = [
        "release_link",
        "name",
        "kind",
        "stage",
        "template",
        "template_version",
        "created_at",
        "opened_at",
    ]
    fields = readonly_fields
    inlines = [ChecklistItemInline]
    actions = ["mark_done_action"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Checklist]:
        return super().get_queryset(request).with_progress()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # checklists are copied from templates when a release is registered

    def has_delete_permission(self, request: HttpRequest, obj: Checklist | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Checklist | None = None) -> bool:
        # "Changing" a checklist is ticking its items; everything else on it is fixed.
        return request.user.has_perm(TICK_PERM)

    def has_tick_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(TICK_PERM)

    @admin.display(description="Release", ordering="release__created_at")
    def release_link(self, obj: Checklist) -> str:
        url = reverse("admin:releases_release_change", args=[obj.release_id])
        return format_html('<a href="{}">{}</a>', url, obj.release)

    @admin.display(description="Progress", ordering="item_done")
    def progress(self, obj: Checklist) -> str:
        return f"{obj.item_done}/{obj.item_total}"

    @admin.display(description="Required open", ordering="required_open")
    def required_open_count(self, obj: Checklist) -> int:
        return obj.required_open

    def save_model(self, request: HttpRequest, obj: Checklist, form: Any, change: bool) -> None:
        pass  # the checklist's own fields are read-only; only its items change (below)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Each changed item goes through set_item_state, which records who, when and why."""
        actor = Actor.for_user(request.user)
        # What the admin's change message and log entry read, normally set by formset.save().
        formset.new_objects, formset.deleted_objects, formset.changed_objects = [], [], []
        for item_form in formset.forms:
            if not item_form.has_changed():
                continue
            formset.changed_objects.append((item_form.instance, item_form.changed_data))
            data = item_form.cleaned_data
            try:
                set_item_state(
                    item_form.instance,
                    done=data["done"],
                    actor=actor,
                    comment=data["comment"],
                    evidence_url=data["evidence_url"],
                )
            except ChecklistError as exc:
                self.message_user(request, exc.message, messages.ERROR)

    @admin.action(
        description="Mark every open item of the selected checklists done", permissions=["tick"]
    )
    def mark_done_action(self, request: HttpRequest, queryset: QuerySet[Checklist]) -> None:
        _mark_done(self, request, ChecklistItem.objects.filter(checklist__in=queryset.values("pk")))


class ItemChangeInline(admin.TabularInline):
    """An item's history: every tick, untick and CI report."""

    model = ChecklistItemChange
    fields = [
        "created_at",
        "previous_state",
        "state",
        "passed",
        "actor_name",
        "comment",
        "evidence_url",
    ]
    readonly_fields = fields
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AutomatedFilter(admin.SimpleListFilter):
    title = "automated"
    parameter_name = "automated"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Automated (has a key)"), ("no", "Manual")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.value() == "yes":
            return queryset.exclude(key="")
        if self.value() == "no":
            return queryset.filter(key="")
        return None


@admin.register(ChecklistItem)
class ChecklistItemAdmin(admin.ModelAdmin):
    """Every item of every release's checklists, to find and tick open ones across releases."""

    list_display = ["text", "checklist", "release", "section", "key", "required", "state", "who"]
    list_filter = [
        "state",
        "required",
        AutomatedFilter,
        "checklist__kind",
        "checklist__release__service",
    ]
    list_select_related = ["checklist__release__service", "checklist__release__environment"]
    search_fields = ["text", "key", "checklist__name", "checklist__release__version"]
    fields = [
        "checklist",
        "section",
        "text",
        "required",
        "key",
        "state",
        "who",
        "comment",
        "evidence_url",
    ]
    readonly_fields = fields
    inlines = [ItemChangeInline]
    actions = ["mark_done_action"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # ticked on the checklist's page or with the action, which record history

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_tick_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(TICK_PERM)

    @admin.display(description="Release", ordering="checklist__release__created_at")
    def release(self, obj: ChecklistItem) -> str:
        return str(obj.checklist.release)

    @admin.display(description="Last change")
    def who(self, obj: ChecklistItem) -> str:
        return _who_when(obj, obj.changed_at)

    @admin.action(description="Mark the selected items done", permissions=["tick"])
    def mark_done_action(self, request: HttpRequest, queryset: QuerySet[ChecklistItem]) -> None:
        _mark_done(self, request, queryset)
