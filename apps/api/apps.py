from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API for CI pipelines: tokens, serializers, views."""

    name = "apps.api"
    label = "api"
