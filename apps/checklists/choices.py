"""Checklist kinds and item states: every allowed value in one place."""

from django.db import models


class ChecklistKind(models.TextChoices):
    PRE_DEPLOYMENT = "pre_deployment", "Pre-deployment"
    STAGE_EXIT = "stage_exit", "Stage exit"
    POST_DEPLOYMENT = "post_deployment", "Post-deployment"
    PERIODIC_REVIEW = "periodic_review", "Periodic review"

    @classmethod
    def open_on_completion(cls) -> list[str]:
        """Kinds whose checklists open when the release completes; they gate nothing."""
        return [cls.POST_DEPLOYMENT, cls.PERIODIC_REVIEW]


class ItemState(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
