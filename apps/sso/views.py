"""Single sign-on's sign-in and sign-out (a 404, or the local one, while OIDC_ISSUER is unset)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views import View
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
    OIDCLogoutView,
)

from . import config

logger = logging.getLogger(__name__)


def _failed(request: HttpRequest, why: str) -> HttpResponse:
    """Back to the sign-in page, saying why (the details go to the log, not the person)."""
    logger.warning("Single sign-on failed: %s", why)
    messages.error(request, "Signing in with single sign-on did not work. " + _public(why))
    return HttpResponseRedirect(reverse("signoffs:login"))


def _public(why: str) -> str:
    if why.startswith("Could not read the OpenID provider"):
        return "The identity provider does not answer; try again later."
    return "Try again, or ask an administrator to read the log."


class Authenticate(OIDCAuthenticationRequestView):
    """Send the browser to the provider: code flow with PKCE (S256), state and nonce."""

    def __init__(self, **kwargs: Any) -> None:
        # The endpoint comes from discovery when the request comes (get), not at construction,
        # where an unreadable document could only be a 500.
        View.__init__(self, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    @staticmethod
    def get_settings(attr: str, *args: Any) -> Any:
        return config.setting(attr, *args)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not config.enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = config.setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except config.DiscoveryError as exc:
            return _failed(request, str(exc))
        return super().get(request)


class Callback(OIDCAuthenticationCallbackView):
    """The provider's answer: the backend checks the code, the tokens and the claims."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not config.enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except (SuspiciousOperation, config.DiscoveryError) as exc:
            return _failed(request, str(exc))
        except OSError as exc:  # requests' errors: the provider's token endpoint is down
            return _failed(request, f"Could not read the OpenID provider's answer: {exc}")

    def login_failure(self) -> HttpResponse:
        messages.error(
            self.request,
            "Signing in with single sign-on did not work: the provider refused, or your "
            "account here is inactive or has no email.",
        )
        return super().login_failure()


class SignOut(OIDCLogoutView):
    """Sign out here, then at the provider (RP-initiated logout) when it offers that."""

    @staticmethod
    def get_settings(attr: str, *args: Any) -> Any:
        return config.setting(attr, *args)


def provider_logout_url(request: HttpRequest) -> str:
    """Where sign-out goes: the provider's end_session_endpoint with our ID token as a hint,
    back to the sign-in page afterwards; the sign-in page itself if the provider has none."""
    if not config.enabled():
        return reverse("signoffs:login")
    back = request.build_absolute_uri(reverse("signoffs:login"))
    try:
        end_session = config.metadata().get("end_session_endpoint")
    except config.DiscoveryError:
        logger.warning("Signed out here only: the provider's discovery document is unreadable")
        return back
    if not end_session:
        return back
    params = {"post_logout_redirect_uri": back, "client_id": settings.OIDC_RP_CLIENT_ID}
    id_token = request.session.get("oidc_id_token")
    if id_token:
        params["id_token_hint"] = id_token
    joiner = "&" if "?" in end_session else "?"
    return f"{end_session}{joiner}{urlencode(params)}"


def admin_sign_in(request: HttpRequest) -> HttpResponse:
    """The admin's own sign-in; with password sign-in off, the one sign-in page instead."""
    if settings.SSO_PASSWORD_LOGIN or not config.enabled():
        return admin.site.login(request)
    target = reverse("signoffs:login")
    query = urlencode({"next": request.GET.get("next", reverse("admin:index"))})
    return HttpResponseRedirect(f"{target}?{query}")
