from django.db import models


class DeliveryStatus(models.TextChoices):
    """Where an outgoing message stands; every outbox table uses these values."""

    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    # Nothing to send any more when its turn came (the gate was signed meanwhile, say).
    SKIPPED = "skipped", "Not needed"
