from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    """Services, environments, plans, releases, their stages and the audit timeline."""

    name = "apps.releases"
    label = "releases"
