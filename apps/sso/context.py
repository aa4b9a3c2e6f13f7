"""What the sign-in page needs to know: whether to offer single sign-on, and the password form."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def sign_in(request: HttpRequest) -> dict[str, Any]:
    return {
        "sso": {
            "enabled": bool(settings.OIDC_ISSUER),
            "password_login": settings.SSO_PASSWORD_LOGIN,
            "provider_name": settings.OIDC_PROVIDER_NAME,
        }
    }
