"""Who may call an API view at all; which object they may have is apps.core.scope's question."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.core.scope import NO_PERMISSION

from .authentication import TokenPrincipal


def person_perm(request: Request, view: Any) -> str | None:
    """The permission a person needs for this request, from the view's `person_perms`: by the
    viewset's action ("create"), else "write" for an unsafe method, else "read". None: any
    signed-in person (the domain decides, e.g. who may sign)."""
    perms: dict[str, str | None] = view.person_perms
    action = getattr(view, "action", None)
    if action in perms:
        return perms[action]
    if request.method not in SAFE_METHODS and "write" in perms:
        return perms["write"]
    return perms["read"]


class TokenOrPersonMay(BasePermission):
    """Tokens pass here and are held to their services on each object (apps.core.scope.get_for)
    and list (scope_to_token); a person needs the view's permission: signing in alone shows
    nothing (docs/security.md, "Roles")."""

    message = NO_PERMISSION

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if isinstance(user, TokenPrincipal):
            return True
        if not (user and user.is_authenticated):
            return False
        perm = person_perm(request, view)
        return perm is None or user.has_perm(perm)


def scope_to_token(queryset: Any, request: Request, field: str = "service_id") -> Any:
    """Narrow a queryset to the token's services; people see everything they may view."""
    if isinstance(request.user, TokenPrincipal):
        return queryset.filter(**{f"{field}__in": request.user.service_ids})
    return queryset
