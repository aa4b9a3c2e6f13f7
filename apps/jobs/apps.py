from django.apps import AppConfig


class JobsConfig(AppConfig):
    """The record of periodic jobs: their last run and the items that failed in them."""

    name = "apps.jobs"
    label = "jobs"
    verbose_name = "Periodic jobs"
