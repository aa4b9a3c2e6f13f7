from django.apps import AppConfig


class ChecksConfig(AppConfig):
    """Metric definitions, sources, criteria, samples, and the history of their evaluations."""

    name = "apps.checks"
    label = "checks"
    verbose_name = "Metric checks"

    def ready(self) -> None:
        from apps.releases import gate_checks

        from . import messages  # noqa: F401 (declares this app's emails to the outbox)
        from .gate import check_metrics, check_traffic

        gate_checks.register("metrics", check_metrics)
        gate_checks.register("traffic", check_traffic)
