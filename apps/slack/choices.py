from django.db import models


class SlackMessageKind(models.TextChoices):
    """What one outgoing Slack call does."""

    POST = "post", "Sign-off request"  # chat.postMessage to a channel or a person
    UPDATE = "update", "Update of a request"  # chat.update of a posted request
    EPHEMERAL = "ephemeral", "Reply to one person"  # chat.postEphemeral: a refusal, say
