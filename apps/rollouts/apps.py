from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """The gate, the transitions, and the scheduled tick that acts on them."""

    name = "apps.rollouts"
    label = "rollouts"
