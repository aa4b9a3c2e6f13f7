"""Sign-off and freeze-window values: every allowed value in one place."""

from django.db import models


class QuorumMode(models.TextChoices):
    EACH_GROUP = "each_group", "One from each group"
    COUNT = "count", "N approvals in all"


class Decision(models.TextChoices):
    GO = "go", "Go"
    NO_GO = "no_go", "No-go"


class FreezeRecurrence(models.TextChoices):
    ONE_OFF = "one_off", "One-off (from / to)"
    WEEKLY = "weekly", "Every week"


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"
