from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared helpers: actors, emails, time. No models."""

    name = "apps.core"
    label = "core"
