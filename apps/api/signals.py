"""A token's stamp follows every change of it (apps/core/stamps.py): the lean reads' copies of
it (apps/api/reads.py) are dropped at the next request after a save, a deletion, or a change of
the services it reaches, from the admin, the API, a command or the shell alike.

Only `QuerySet.update()` passes Django's signals by: the one such change of what a copy holds
is revocation, which goes through ApiTokenQuerySet.revoke(). (`last_used_at`, updated in bulk
once a minute, is not what a copy is checked for: each process keeps its own.)
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from apps.core import stamps

from .models import ApiToken


@receiver(post_save, sender=ApiToken, dispatch_uid="api-token-stamp-save")
@receiver(post_delete, sender=ApiToken, dispatch_uid="api-token-stamp-delete")
def _token_changed(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    stamps.changed(stamps.TOKEN, [instance.key_hash])


@receiver(m2m_changed, sender=ApiToken.services.through, dispatch_uid="api-token-stamp-services")
def _token_services_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if not reverse:  # token.services.add/remove/set/clear(...): this token
        if action.startswith("post_"):
            stamps.changed(stamps.TOKEN, [instance.key_hash])
        return
    # service.api_tokens...: these tokens; before a clear, which are about to lose it.
    if action in ("post_add", "post_remove"):
        tokens = ApiToken.objects.filter(pk__in=pk_set or ())
    elif action == "pre_clear":
        tokens = instance.api_tokens.all()
    else:
        return
    stamps.changed(stamps.TOKEN, list(tokens.values_list("key_hash", flat=True)))
