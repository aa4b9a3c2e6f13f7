"""`Authorization: Token <key>` authentication against hashed, service-scoped tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from apps.core.actors import Actor
from apps.core.compiled import Compiled

from .models import ApiToken, hash_key

# Writing last_used_at on every request would turn each read into a write; once a minute is
# precise enough to tell a live pipeline from a forgotten token.
LAST_USED_PRECISION = timedelta(minutes=1)
TOKEN_FIELDS = [field.attname for field in ApiToken._meta.concrete_fields]
TOKEN_QUERY = Compiled(
    lambda key_hash: (
        ApiToken.objects.usable()
        .filter(key_hash=key_hash)
        .values_list(*TOKEN_FIELDS, "services__id")
    ),
    arity=1,
)


class TokenPrincipal:
    """What `request.user` is for a token: authenticated, scoped to services, no permissions."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, token: ApiToken, service_ids: frozenset[int]) -> None:
        self.token = token
        self.service_ids = service_ids
        self.actor = Actor.for_token(token.pk, token.name, service_ids)

    def get_username(self) -> str:
        return self.actor.name

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def __str__(self) -> str:
        return self.actor.name


class ServiceTokenAuthentication(BaseAuthentication):
    """Look the key's hash up among unrevoked tokens."""

    keyword = b"token"

    def authenticate(self, request: Request) -> tuple[TokenPrincipal, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid Authorization header: expected 'Token <key>'.")
        try:
            key = parts[1].decode()
        except UnicodeError as exc:
            raise AuthenticationFailed("Invalid token.") from exc
        return self.principal(key)

    def principal(self, key: str, *, note: bool = True) -> tuple[TokenPrincipal, ApiToken]:
        """The unrevoked token with this key, as the request's user (AuthenticationFailed if
        none); also used by the OFREP endpoints, which take the key in other headers too and
        note its use themselves (`note=False`) once the request is admitted."""
        # The token and its services in one query (a row per service), compiled once: this runs
        # on every API request, and building a query in the ORM costs more than answering it.
        rows = TOKEN_QUERY.rows(hash_key(key))
        if not rows:
            raise AuthenticationFailed("Invalid or revoked token.")
        token = ApiToken.from_db(ApiToken.objects.db, TOKEN_FIELDS, rows[0][:-1])
        service_ids = frozenset(row[-1] for row in rows if row[-1] is not None)
        if note:
            note_use(token.pk, token.last_used_at)
        return TokenPrincipal(token, service_ids), token

    def authenticate_header(self, request: Request) -> str:
        return "Token"


def token_key(request: Any) -> str | None:
    """The key of a well-formed `Authorization: Token <key>` header, else None (no header,
    another scheme, or one `authenticate` refuses): what the lean reads (apps/api/reads.py)
    serve themselves; anything else goes to DRF, which answers it."""
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != ServiceTokenAuthentication.keyword:
        return None
    try:
        return parts[1].decode()
    except UnicodeError:
        return None


def note_use(token_pk: int, last_used_at: Any) -> Any:
    """Record that the token was used now, at most once a minute (LAST_USED_PRECISION); returns
    its last use as now recorded."""
    now = timezone.now()
    if last_used_at is None or now - last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token_pk).update(last_used_at=now)
        return now
    return last_used_at


def actor_for(request: Request) -> Actor:
    """The Actor an API request acts as."""
    if isinstance(request.user, TokenPrincipal):
        return request.user.actor
    return Actor.for_user(request.user)
