"""OFREP core under /ofrep/v1/ (the path OpenFeature's OFREP providers call)."""

from django.urls import path

from .views_ofrep import EvaluateFlagsView, EvaluateFlagView

app_name = "ofrep"

urlpatterns = [
    path("evaluate/flags", EvaluateFlagsView.as_view(), name="evaluate-flags"),
    path("evaluate/flags/<str:key>", EvaluateFlagView.as_view(), name="evaluate-flag"),
]
