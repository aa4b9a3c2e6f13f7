"""The provider's origin in the pages' CSP form-action, while single sign-on is on.

The pages' policy says `form-action 'self'`, and browsers apply it to where a form's redirects
lead too: the *Sign in with …* form (redirected to the provider's authorization endpoint) and
the Sign out button (redirected to its end-session endpoint) would be blocked. This adds the
provider's origins, read from settings and the cached discovery document, to every answer.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from . import config


class FormActionMiddleware:
    """Listed below CSPMiddleware, so that its answer is marked before the policy is built."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if config.enabled():
            update = dict(getattr(response, "_csp_update", None) or {})
            update["form-action"] = [*update.get("form-action", []), *config.form_targets()]
            response._csp_update = update
        return response
