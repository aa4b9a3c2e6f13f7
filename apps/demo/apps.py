from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for a first look (`manage.py load_demo`); an entry point, so it may import all."""

    name = "apps.demo"
    label = "demo"
