from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API for CI pipelines: tokens, serializers, views."""

    name = "apps.api"
    label = "api"

    def ready(self) -> None:
        # Imported for what they register: the rate-limit deploy check, the OpenAPI auth extension,
        # the tokens' stamps.
        from . import checks, schema, signals  # noqa: F401
