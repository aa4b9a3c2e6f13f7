from django.apps import AppConfig


class SsoConfig(AppConfig):
    """Single sign-on with the company's OpenID Connect provider; IdP groups become roles."""

    name = "apps.sso"
    label = "sso"
    verbose_name = "Single sign-on"
