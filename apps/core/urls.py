"""URLs of the core app: only the bench floor, mounted when BENCH_FLOOR_VIEW is on."""

from django.urls import path

from . import views

app_name = "core"

urlpatterns = [
    path("bench/floor/", views.floor, name="floor"),
]
