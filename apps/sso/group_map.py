"""OIDC_GROUP_MAP's text, read by the settings (so: no model imports here)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


def parse_group_map(text: str) -> dict[str, list[str]]:
    """'idp-group=rolloutdesk group;other=Approvers' -> {idp group: [rolloutdesk groups]}.

    An IdP group may appear twice to grant two groups. A bad entry stops the settings with its
    text, rather than silently granting nothing.
    """
    result: dict[str, list[str]] = {}
    for entry in text.split(";"):
        if not entry.strip():
            continue
        idp, sep, ours = entry.partition("=")
        if not sep or not idp.strip() or not ours.strip():
            raise ImproperlyConfigured(
                f"OIDC_GROUP_MAP entry {entry.strip()!r} is not 'IdP group=rolloutdesk group'."
            )
        result.setdefault(idp.strip(), []).append(ours.strip())
    return result
