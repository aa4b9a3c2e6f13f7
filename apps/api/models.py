"""Service-scoped API tokens, stored hashed."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from apps.core import stamps
from apps.releases.models import Service

KEY_PREFIX = "rd_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)

    def revoke(self) -> int:
        """Revoke the usable tokens among these, now; returns how many. The web processes'
        copies of them are dropped at their next request (their stamps, apps/api/signals.py)."""
        with transaction.atomic():
            usable = self.usable().select_for_update()
            hashes = list(usable.values_list("key_hash", flat=True))
            revoked = self.model.objects.filter(key_hash__in=hashes).update(
                revoked_at=timezone.now()
            )
            stamps.changed(stamps.TOKEN, hashes)
        return revoked


class ApiToken(models.Model):
    """A key a CI pipeline sends as `Authorization: Token <key>`; only its hash is kept."""

    name = models.CharField(max_length=100)
    services = models.ManyToManyField(Service, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_hint = models.CharField(
        max_length=16, editable=False, help_text="The key's first characters, to tell keys apart."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_hint}…)"

    def set_new_key(self) -> str:
        """Give the token a fresh random key and return it; it cannot be read back later."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.key_hash = hash_key(key)
        self.key_hint = key[:10]
        return key

    @classmethod
    def issue(
        cls, name: str, services: list[Service], created_by: object = None
    ) -> tuple[ApiToken, str]:
        """Create a token for the given services; returns (token, key)."""
        token = cls(name=name, created_by=created_by)
        key = token.set_new_key()
        token.save()
        token.services.set(services)
        return token, key
