"""rolloutdesk's settings for the processes the fault and scale-out tests start: every scheduled
task every few seconds (a minute-long tick would make the tests minutes long), and static file
names without collectstatic's manifest (as in the test suite)."""

from rolloutdesk import settings as base

globals().update({name: value for name, value in vars(base).items() if name.isupper()})

FAST_SECONDS = 3.0

# The metric checks claim one run per release per tick slot: the slot follows the tick.
CHECKS_TICK_SECONDS = int(FAST_SECONDS)
CELERY_BEAT_SCHEDULE = {
    name: {**entry, "schedule": FAST_SECONDS, "options": {"expires": FAST_SECONDS * 3}}
    for name, entry in base.CELERY_BEAT_SCHEDULE.items()
}
STORAGES = {
    **base.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# The outbox: a dead worker's claim is taken over after a few seconds, a row nobody queued is
# swept after two, and a failed send is retried two seconds later.
OUTBOX_LEASE_SECONDS = 6
OUTBOX_PENDING_GRACE_SECONDS = 2
OUTBOX_RETRY_FIRST_SECONDS = 2
