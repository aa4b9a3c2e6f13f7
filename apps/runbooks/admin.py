"""Admin: the record of runbook imports, and "Import runbook": upload, review, save.

The upload is parsed into a draft; the review page lists every stage, criterion, escalation level
and checklist item with the runbook line it came from, each editable and untickable, and what
would change against the service's last import. Saving writes everything in one transaction
(apps.runbooks.saving) or shows every reason it cannot, keeping the reviewer's edits.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from apps.core.actors import Actor
from apps.releases.models import Service

from . import review
from .diff import against_last_import
from .draft import DraftShapeError, from_json
from .models import RunbookImport
from .parsing import parse
from .saving import ImportRefused, SaveOptions, save_draft
from .text import MAX_BYTES, RunbookError, decode, too_large


class UploadForm(forms.Form):
    """Step 1: the runbook, the service it configures, and what the runbook cannot say."""

    file = forms.FileField(label="Runbook (Markdown)", help_text="UTF-8 text, up to 2 MB.")
    service = forms.ModelChoiceField(queryset=Service.objects.order_by("name"))
    name = forms.CharField(
        required=False, max_length=120, help_text="Plan and checklist names (default: the title)."
    )
    prometheus_url = forms.URLField(
        assume_scheme="http",
        required=False,
        label="Prometheus URL",
        help_text="Where the runbook's Prometheus alert rules are read, if it has any.",
    )
    sql_database = forms.CharField(
        required=False,
        max_length=60,
        label="SQL database",
        help_text="The read-only database (CHECKS_SQL_DATABASES) its SQL queries run on.",
    )

    payload: dict[str, Any] | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        upload, service = cleaned.get("file"), cleaned.get("service")
        if upload is None or service is None:
            return cleaned
        if upload.size > MAX_BYTES:
            self.add_error("file", too_large(upload.name, upload.size))
            return cleaned
        data = upload.read()
        try:
            draft = parse(data, source=upload.name, name=cleaned.get("name") or None)
            text, _ = decode(data, upload.name)
        except RunbookError as exc:
            self.add_error("file", exc.message)
            return cleaned
        self.payload = {
            "draft": draft.as_json(),
            "source": draft.source,
            "service": service.pk,
            "lines": review.source_lines(text, draft),
            "prometheus_url": cleaned.get("prometheus_url") or "",
            "sql_database": cleaned.get("sql_database") or "",
        }
        return cleaned


@admin.register(RunbookImport)
class RunbookImportAdmin(admin.ModelAdmin):
    """What each import saved, for which service; "Import runbook" makes a new one."""

    list_display = ["source", "service", "title", "plan", "policy", "created_by", "created_at"]
    list_filter = ["service"]
    search_fields = ["source", "title"]
    readonly_fields = [
        "service",
        "source",
        "title",
        "plan",
        "policy",
        "created_by",
        "created_at",
        "draft",
    ]
    change_list_template = "admin/runbooks/runbookimport/change_list.html"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record of what was saved; the saved objects are edited where they live

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("runbooks.add_runbookimport")

    def add_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:runbooks_runbookimport_import"))

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="runbooks_runbookimport_import"), *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST" and "payload" in request.POST:
            return self._save(request)
        upload = UploadForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
        )
        if request.method == "POST" and upload.is_valid() and upload.payload is not None:
            return self._review_page(request, upload.payload)
        context = {**self._context(request, "Import a runbook"), "form": upload}
        return TemplateResponse(request, "admin/runbooks/runbookimport/upload.html", context)

    def _save(self, request: HttpRequest) -> HttpResponse:
        try:
            payload = review.unsign(request.POST["payload"])
        except signing.BadSignature:
            self.message_user(
                request,
                "The review expired or was altered; upload the runbook again.",
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse("admin:runbooks_runbookimport_import"))
        service = Service.objects.filter(pk=payload["service"]).first()
        edited, errors = review.apply_edits(payload["draft"], request.POST)
        if service is None:
            errors.append("The service was deleted since the upload; upload the runbook again.")
        if not errors:
            try:
                draft = from_json(edited, source=payload["source"])
                assert service is not None
                saved = save_draft(
                    draft,
                    service=service,
                    actor=Actor.for_user(request.user),
                    options=SaveOptions(payload["prometheus_url"], payload["sql_database"]),
                )
            except DraftShapeError as exc:
                errors.append(str(exc))
            except ImportRefused as exc:
                errors.extend(exc.messages)
            else:
                for line in saved.describe():
                    self.message_user(request, line)
                return HttpResponseRedirect(
                    reverse("admin:runbooks_runbookimport_change", args=[saved.record.pk])
                )
        return self._review_page(request, payload, post=request.POST, errors=errors)

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        request.current_app = self.admin_site.name
        return {**self.admin_site.each_context(request), "title": title, "opts": self.opts}

    def _review_page(
        self,
        request: HttpRequest,
        payload: dict[str, Any],
        *,
        post: Any = None,
        errors: list[str] | None = None,
    ) -> TemplateResponse:
        service = Service.objects.filter(pk=payload["service"]).first()
        draft = payload["draft"]
        try:
            diff = against_last_import(from_json(draft, source=payload["source"]), service)
        except DraftShapeError:  # pragma: no cover - the payload is signed, made by as_json
            diff = None
        context = {
            **self._context(request, f"Review {payload['source']} for {service}"),
            "payload": review.sign(payload),
            "draft": draft,
            "review": review.rows(draft, payload["lines"], post),
            "diff": diff,
            "errors": errors or [],
            "service": service,
            "choices": review.CHOICES,
        }
        return TemplateResponse(request, "admin/runbooks/runbookimport/review.html", context)
