from django.apps import AppConfig


class SignoffsConfig(AppConfig):
    """Sign-off rules, sign-offs, sign-off requests and change-freeze windows."""

    name = "apps.signoffs"
    label = "signoffs"
    verbose_name = "Sign-offs and freezes"
