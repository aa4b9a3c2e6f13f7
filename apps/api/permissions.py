"""Who may read and act through the API."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from .authentication import TokenPrincipal


class ReleasePermission(BasePermission):
    """Tokens act within their services; people need view, add or operate permissions."""

    message = "You do not have permission to do that."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if isinstance(user, TokenPrincipal):
            return True
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return user.has_perm("releases.view_release")
        if getattr(view, "action", None) == "create":
            return user.has_perm("releases.add_release")
        return user.has_perm("releases.operate_release")

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        user = request.user
        if isinstance(user, TokenPrincipal):
            if obj.service_id not in user.service_ids:
                self.message = "This token may not act on this service's releases."
                return False
        return True


class TokenOrPersonMay(BasePermission):
    """Tokens read within their services (the view narrows its queryset); a person needs the
    view's `person_perm`: signing in alone shows nothing (docs/security.md, "Roles")."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if isinstance(user, TokenPrincipal):
            return True
        return bool(user and user.is_authenticated and user.has_perm(view.person_perm))


def scope_to_token(queryset: Any, request: Request, field: str = "service_id") -> Any:
    """Narrow a queryset to the token's services; people see everything they may view."""
    if isinstance(request.user, TokenPrincipal):
        return queryset.filter(**{f"{field}__in": request.user.service_ids})
    return queryset
