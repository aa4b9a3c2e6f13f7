from django.apps import AppConfig


class ChecksConfig(AppConfig):
    """Metric definitions, sources, criteria, samples, and the history of their evaluations."""

    name = "apps.checks"
    label = "checks"
    verbose_name = "Metric checks"

    def ready(self) -> None:
        from . import messages  # noqa: F401 (declares this app's emails to the outbox)
