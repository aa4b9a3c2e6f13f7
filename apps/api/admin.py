"""Admin for API tokens: the key is shown once, on the page right after creation."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from .models import ApiToken

# Where save_model leaves the new key for response_add: on the request, never in the database,
# a message cookie or the session.
_NEW_KEY_ATTR = "_rolloutdesk_new_api_key"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Service-scoped tokens for CI; rolloutdesk keeps only each key's hash."""

    list_display = [
        "name",
        "service_list",
        "key_hint",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
        "is_usable",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "services"]
    list_select_related = ["created_by"]
    search_fields = ["name", "key_hint", "services__name", "services__slug"]
    filter_horizontal = ["services"]
    fields = ["name", "services", "key_hint", "created_by", "created_at", "last_used_at"]
    readonly_fields = ["key_hint", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_tokens"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return super().get_queryset(request).prefetch_related("services")

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return ["name", "services"]
        return [*self.fields, "revoked_at"]

    @admin.display(description="Services")
    def service_list(self, obj: ApiToken) -> str:
        return ", ".join(s.slug for s in obj.services.all())

    @admin.display(description="Usable", boolean=True)
    def is_usable(self, obj: ApiToken) -> bool:
        return obj.revoked_at is None

    def save_model(
        self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm, change: bool
    ) -> None:
        if not change:
            setattr(request, _NEW_KEY_ATTR, obj.set_new_key())
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        key = getattr(request, _NEW_KEY_ATTR, None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": f"API token {obj.name} created",
            "opts": self.opts,
            "token": obj,
            "key": key,
        }
        request.current_app = self.admin_site.name
        response = TemplateResponse(request, "admin/api/apitoken/key_issued.html", context)
        # The page holds a secret: no browser or proxy may keep a copy of it.
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = queryset.revoke()
        already = queryset.count() - revoked
        text = f"Revoked {revoked} token(s)."
        if already:
            text += f" {already} already revoked, left as they were."
        self.message_user(request, text, messages.SUCCESS)
