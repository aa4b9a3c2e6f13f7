"""Registering a release: the release and its stage copies, plus what its plan attaches to it."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.checklists.services import snapshot_checklists
from apps.releases import gate_inputs
from apps.releases.models import Release
from apps.releases.services import create_release
from apps.signoffs.services import attach_rules


def register_release(**fields: Any) -> tuple[Release, bool]:
    """Create a release (see releases.services.create_release) with everything its plan brings.

    Returns (release, created); registering the same version again returns the existing one.
    API, admin and demo data call this, never create_release directly.
    """
    with transaction.atomic():
        release, created = create_release(**fields)
        if created:
            snapshot_checklists(release)
            attach_rules(release)
            gate_inputs.changed(releases=[release.pk])
    return release, created
