"""The email a metric check sends on a warning (or a notify-only failure)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from apps.outbox.emails import Draft, Skip, kind, write
from apps.outbox.models import Message
from apps.releases.models import Release

from .models import CheckNotification

METRIC_CHECK = "metric-check"


def tell(notification: CheckNotification, release: Release) -> list[int]:
    """Inside the tick's savepoint that claimed the notification: one message per address."""
    return write(
        METRIC_CHECK,
        release.service.notification_recipients(),
        key=f"check-notification-{notification.pk}",
        args={"notification": notification.pk},
        about=f"release {release.pk}",
    )


def _sent(message: Message) -> None:
    CheckNotification.objects.filter(
        pk=message.args.get("notification"), sent_at__isnull=True
    ).update(sent_at=message.sent_at or timezone.now())


@kind(METRIC_CHECK, sent=_sent)
def metric_check_email(args: dict[str, Any]) -> Draft:
    notification = (
        CheckNotification.objects.select_related(
            "release__service",
            "release__environment",
            "release__current_stage",
            "result__criterion__metric",
        )
        .filter(pk=args["notification"])
        .first()
    )
    if notification is None:
        raise Skip("The check result it tells of is gone.")
    result = notification.result
    criterion = result.criterion
    return Draft(
        METRIC_CHECK,
        {
            "release": notification.release,
            "result": result,
            "criterion": criterion,
            "value": criterion.metric.format(result.value) if criterion else result.value,
            "threshold": criterion.format_threshold(result.threshold) if criterion else "",
        },
    )
