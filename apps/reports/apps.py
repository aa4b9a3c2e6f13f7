from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Report subscriptions, generated daily and weekly reports, and their deliveries."""

    name = "apps.reports"
    label = "reports"
    verbose_name = "Reports"
