from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Report subscriptions, generated daily and weekly reports, and their deliveries."""

    name = "apps.reports"
    label = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        from . import services  # noqa: F401 (registers the deliveries with the outbox engine)
