"""What the pages show of incidents, when the incidents app is installed (otherwise nothing)."""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps

from apps.releases.models import Release


def installed() -> bool:
    return django_apps.is_installed("apps.incidents")


def for_release(release: Release) -> list[Any]:
    """The release's incidents, unresolved first: one query."""
    if not installed():
        return []
    from apps.incidents.models import Incident

    return list(Incident.objects.filter(release_id=release.pk).order_by("-opened_at", "-id"))


def open_counts(releases: list[Release]) -> dict[int, int]:
    """Unresolved incidents per service of the given releases: one query."""
    if not installed() or not releases:
        return {}
    from django.db.models import Count

    from apps.incidents.choices import IncidentStatus
    from apps.incidents.models import Incident

    rows = (
        Incident.objects.filter(
            service_id__in={r.service_id for r in releases},
            status__in=IncidentStatus.unresolved(),
        )
        .values("service_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["service_id"]: row["n"] for row in rows}
