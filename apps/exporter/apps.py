from django.apps import AppConfig


class ExporterConfig(AppConfig):
    """rolloutdesk's own metrics for Prometheus, served at /metrics when configured."""

    name = "apps.exporter"
    label = "exporter"
    verbose_name = "Prometheus metrics"
