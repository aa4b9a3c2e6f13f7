from django.urls import path

from . import views

app_name = "slack"

urlpatterns = [
    path("slack/interactivity/", views.interactivity, name="interactivity"),
]
