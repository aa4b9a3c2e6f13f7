"""The identity provider's groups become rolloutdesk groups (roles and sign-off groups).

OIDC_GROUP_MAP names, for each IdP group, the rolloutdesk group it grants. Every group named on
its right-hand side is *managed*: at each sign-in a person is put in exactly the managed groups
their IdP groups map to, so someone taken out of a group in the IdP loses the role at their next
sign-in. Groups the map does not name (kept by hand in the admin) are left as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from apps.releases.roles import ROLE_PERMISSIONS

logger = logging.getLogger(__name__)


def managed_groups(group_map: Mapping[str, list[str]]) -> set[str]:
    return {name for names in group_map.values() for name in names}


def idp_groups(claims: Mapping[str, Any], claim: str) -> set[str]:
    """The groups in the claims: a list or a space-separated string; a dotted claim name
    reaches into nested objects (Keycloak's realm_access.roles)."""
    value: Any = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return set()
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list | tuple):
        return {str(v) for v in value}
    return set()


def wanted_groups(groups: set[str], group_map: Mapping[str, list[str]]) -> set[str]:
    return {name for g in groups for name in group_map.get(g, [])}


def apply(user: Any, claims: Mapping[str, Any]) -> set[str]:
    """Put the person in exactly the managed groups their claims map to; returns them.

    Staff status (the admin) follows the roles, as for people added by hand: someone who holds
    a role may open the admin, someone who lost every role may not (superusers keep it).
    """
    group_map = settings.OIDC_GROUP_MAP
    managed = managed_groups(group_map)
    wanted = wanted_groups(idp_groups(claims, settings.OIDC_GROUPS_CLAIM), group_map)
    with transaction.atomic():
        existing = {g.name: g for g in Group.objects.filter(name__in=managed)}
        for name in wanted - existing.keys():
            existing[name] = Group.objects.create(name=name)
        current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
        removed, added = current - wanted, wanted - current
        if removed:
            user.groups.remove(*(existing[n] for n in removed if n in existing))
        if added:
            user.groups.add(*(existing[n] for n in added))
        holds_role = bool(wanted & ROLE_PERMISSIONS.keys()) or bool(
            set(user.groups.values_list("name", flat=True)) & ROLE_PERMISSIONS.keys()
        )
        staff = user.is_superuser or holds_role
        if user.is_staff != staff:
            user.is_staff = staff
            user.save(update_fields=["is_staff"])
    if removed or added:
        logger.info(
            "Single sign-on: %s joined %s, left %s",
            user.get_username(),
            sorted(added) or "nothing",
            sorted(removed) or "nothing",
        )
    return wanted
