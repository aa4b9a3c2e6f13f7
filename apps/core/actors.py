"""Who did something: a person, an API token, or rolloutdesk itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models


class ActorKind(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "API token"
    SYSTEM = "system", "System"


@dataclass(frozen=True)
class Actor:
    """The author of an action, as recorded in the audit timeline."""

    kind: str
    name: str
    user: Any = None  # a django.contrib.auth user for kind=user
    token_id: int | None = None
    # The services a token may act on; None means "not limited by token scope".
    service_ids: frozenset[int] | None = None

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(kind=ActorKind.USER, name=user.get_username(), user=user)

    @classmethod
    def for_token(cls, token_id: int, token_name: str, service_ids: frozenset[int]) -> Actor:
        return cls(
            kind=ActorKind.TOKEN,
            name=f"token:{token_name}",
            token_id=token_id,
            service_ids=service_ids,
        )

    @classmethod
    def system(cls, what: str = "rolloutdesk") -> Actor:
        return cls(kind=ActorKind.SYSTEM, name=f"system:{what}")

    def has_perm(self, perm: str) -> bool:
        """Tokens and the system hold no Django permissions; people hold their groups'."""
        return self.kind == ActorKind.USER and self.user is not None and self.user.has_perm(perm)

    def may_touch_service(self, service_id: int) -> bool:
        """A token acts only on its own services; people and the system are not scoped."""
        return self.service_ids is None or service_id in self.service_ids

    def __str__(self) -> str:
        return self.name
