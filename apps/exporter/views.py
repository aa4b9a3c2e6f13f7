"""GET /metrics: the Prometheus text format, for a scraper holding the token or on the list."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from .collector import DatabaseCollector


def configured() -> bool:
    """/metrics exists only once a token or an allow-list says who may read it."""
    return bool(settings.METRICS_TOKEN or settings.METRICS_ALLOWED_NETWORKS)


def refusal(request: HttpRequest) -> str | None:
    """Why this request may not read the metrics; None when it may.

    Each configured guard must hold: the token (`Authorization: Bearer <token>`) when one is
    set, the client's address in the allow-list when one is set.
    """
    if settings.METRICS_TOKEN:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.METRICS_TOKEN.encode()
        ):
            return "Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'."
    if settings.METRICS_ALLOWED_NETWORKS:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return "The client address is unknown."
        if not any(address in network for network in allowed_networks()):
            return f"{address} is not in METRICS_ALLOWED_NETWORKS."
    return None


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.METRICS_ALLOWED_NETWORKS]


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The figures of apps.exporter.collector, in a registry of their own: the default one
    would add this one process's Python figures, which differ per gunicorn worker."""
    if not configured():
        raise Http404("Metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_NETWORKS.")
    reason = refusal(request)
    if reason is not None:
        response = HttpResponse(reason + "\n", status=401, content_type="text/plain")
        if settings.METRICS_TOKEN:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    # The format the scraper asks for (Prometheus prefers OpenMetrics), else the plain text one.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
