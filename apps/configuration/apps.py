from django.apps import AppConfig


class ConfigurationConfig(AppConfig):
    """Configuration as code: export the rollout configuration as YAML, apply a file back."""

    name = "apps.configuration"
    label = "configuration"
    verbose_name = "Configuration as code"
