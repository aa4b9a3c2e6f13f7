from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared helpers: actors, emails, time, the outage and bad-input middleware. No models."""

    name = "apps.core"
    label = "core"
