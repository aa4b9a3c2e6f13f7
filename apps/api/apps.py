from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API for CI pipelines: tokens, serializers, views."""

    name = "apps.api"
    label = "api"

    def ready(self) -> None:
        from . import schema  # noqa: F401  (registers the OpenAPI auth extension)
