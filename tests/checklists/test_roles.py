"""The roles hold the checklist permissions roles.py lists (granted by a data migration)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.releases.roles import APPROVERS, RELEASE_MANAGERS, ROLE_PERMISSIONS, VIEWERS

pytestmark = pytest.mark.django_db


def test_groups_hold_exactly_the_checklist_permissions_of_roles_py() -> None:
    for name, perms in ROLE_PERMISSIONS.items():
        held = Group.objects.get(name=name).permissions.filter(content_type__app_label="checklists")
        assert {
            f"checklists.{codename}" for codename in held.values_list("codename", flat=True)
        } == {p for p in perms if p.startswith("checklists.")}, name


def test_who_may_tick_and_who_keeps_templates(rita, alice, victor) -> None:
    assert [u.has_perm("checklists.tick_checklistitem") for u in (rita, alice, victor)] == [
        True,
        True,
        False,
    ]
    assert [u.has_perm("checklists.add_checklisttemplate") for u in (rita, alice, victor)] == [
        True,
        False,
        False,
    ]
    assert {RELEASE_MANAGERS, APPROVERS, VIEWERS} <= set(ROLE_PERMISSIONS)
