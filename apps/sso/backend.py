"""The authentication backend: mozilla-django-oidc's code flow, with the checks it leaves out.

mozilla-django-oidc verifies the ID token's signature (against the provider's JWKS) and nonce;
it does not check who issued the token or for whom (it turns audience checks off). Here the
token must come from OIDC_ISSUER, be meant for OIDC_CLIENT_ID, and be current (exp, iat), or
the sign-in fails. A person is found by email (case-insensitive), created on first sign-in, and
given the groups their IdP groups map to at every sign-in (mapping.py).
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from . import config, mapping

logger = logging.getLogger(__name__)


class Backend(OIDCAuthenticationBackend):
    """Sign-in with the company's OpenID provider (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django makes a backend for every request of a signed-in person: reading the
        # endpoints (discovery) waits until a sign-in needs them, so a provider that is down
        # stops new sign-ins only, never the pages of people already signed in.
        ModelBackend.__init__(self)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # noqa: N802 (mozilla-django-oidc's name)
        return config.setting("OIDC_OP_TOKEN_ENDPOINT")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:  # noqa: N802
        return config.setting("OIDC_OP_USER_ENDPOINT")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:  # noqa: N802
        return config.setting("OIDC_OP_JWKS_ENDPOINT")

    @staticmethod
    def get_settings(attr: str, *args: Any) -> Any:
        return config.setting(attr, *args)

    def _verify_jws(self, payload: bytes | str, key: Any) -> dict[str, Any]:
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(
                f"The ID token is signed with {header.get('alg')!r}, not {self.OIDC_RP_SIGN_ALGO}."
            )
        try:
            return jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=config.issuer(),
                leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"The ID token is not valid: {exc}") from exc

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload = super().verify_token(token, **kwargs)
        # Several audiences: the token must name us as the party it was issued to.
        aud = payload.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and payload.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("The ID token was issued to another party (azp).")
        self._id_claims = payload
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict:
        """The ID token's claims with the userinfo endpoint's over them (some providers put the
        groups in one, some in the other); the subject must be the same in both."""
        info = super().get_userinfo(access_token, id_token, payload)
        if info.get("sub") and info["sub"] != payload.get("sub"):
            raise SuspiciousOperation("The userinfo answer is about another subject.")
        return {**payload, **info}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        if not claims.get("email"):
            logger.warning("Single sign-on refused: the provider sent no email for %s", claims)
            return False
        if claims.get("email_verified") is False:
            logger.warning("Single sign-on refused: %s is not verified", claims.get("email"))
            return False
        return True

    def get_username(self, claims: dict[str, Any]) -> str:
        return str(claims.get("preferred_username") or claims["email"])[:150]

    def create_user(self, claims: dict[str, Any]) -> Any:
        username = self.get_username(claims)
        if self.UserModel.objects.filter(username__iexact=username).exists():
            username = claims["email"][:150]  # a local account holds the name: use the address
        try:
            user = self.UserModel.objects.create_user(
                username,
                email=claims["email"],
                first_name=str(claims.get("given_name", ""))[:150],
                last_name=str(claims.get("family_name", ""))[:150],
            )
        except IntegrityError as exc:
            raise SuspiciousOperation(f"Could not create an account for {username}") from exc
        mapping.apply(user, claims)
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        mapping.apply(user, claims)
        return user
