"""The browsable API, under the site's Content-Security-Policy."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import BrowsableAPIRenderer


class PolicyBrowsableAPIRenderer(BrowsableAPIRenderer):
    """DRF's HTML pages place buttons with `style` attributes (its own template, no user text in
    them): allow inline style attributes on these answers only, never scripts."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> Any:
        rendered = super().render(data, accepted_media_type, renderer_context)
        response = (renderer_context or {}).get("response")
        if response is not None:
            response._csp_update = {"style-src-attr": ["'unsafe-inline'"]}
        return rendered
