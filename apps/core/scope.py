"""What an actor (a person or a CI token) may see and act on: one rule for the API and the pages.

A release, an incident or a checklist belongs to a service. A token acts only within its
services; a person needs the permission the caller names (their role). The answer is the object,
or a refusal: 404 when there is no such object, 403 (`Refused`) when the actor may not have it.

Here, not in apps/api: the pages use it too, and an interface never imports another (design.md).
It imports Django only: the caller passes the queryset, so core knows no feature app's models.

A token of another service gets 403 naming the reason, not 404: CI holding the wrong token must
be told so (docs/security.md, "Object-level checks"); lists are narrowed to the token's services,
so it learns of no object it did not already name by id.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from .actors import Actor, ActorKind

M = TypeVar("M", bound=Model)

NO_PERMISSION = "You do not have permission to do that."


class Refused(PermissionDenied):
    """The actor may not see or act on the object (HTTP 403); the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check_perm(actor: Actor, perm: str | None, message: str = NO_PERMISSION) -> None:
    """Refuse a person without `perm`; tokens and the system are scoped by service instead."""
    if perm is not None and actor.kind == ActorKind.USER and not actor.has_perm(perm):
        raise Refused(message)


def check_service(actor: Actor, service_id: int, what: str, message: str = "") -> None:
    """Refuse a token of another service; `what` names the objects ("releases")."""
    if not actor.may_touch_service(service_id):
        raise Refused(message or f"This token may not act on this service's {what}.")


def get_for(
    actor: Actor,
    queryset: QuerySet[M],
    *,
    perm: str | None = None,
    refusal: str = NO_PERMISSION,
    service_field: str = "service_id",
    **lookup: Any,
) -> M:
    """The object of `queryset` matching `lookup` that `actor` may see or act on.

    The person's permission is checked before the object is read, so a refusal says nothing of
    whether it exists; then 404 for no such object; then the token's scope (403).
    """
    check_perm(actor, perm, refusal)
    try:
        obj = get_object_or_404(queryset, **lookup)
    except (TypeError, ValueError, ValidationError):
        # An id that is no id ("null,null" in the path) names nothing: 404, not a 500.
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from None
    service_id = obj
    for part in service_field.split("__"):
        service_id = getattr(service_id, part)
    check_service(actor, service_id, str(queryset.model._meta.verbose_name_plural))
    return obj
