from django.apps import AppConfig


class SlackConfig(AppConfig):
    """Sign-off requests on Slack: Go / No-go buttons, answered through the signed endpoint."""

    name = "apps.slack"
    label = "slack"
    verbose_name = "Slack sign-offs"

    def ready(self) -> None:
        from apps.signoffs import channels

        from . import messages, sending  # noqa: F401 (registers the Slack outbox table)

        channels.register(messages.ask, messages.changed)
