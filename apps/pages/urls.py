"""The pages' URLs: the dashboard at /, the release page and its forms, the incident list."""

from django.apps import apps
from django.urls import path

from . import views

app_name = "pages"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("releases/<int:pk>/", views.release_detail, name="release"),
    path("releases/<int:pk>/transition/", views.transition, name="transition"),
    path("releases/<int:pk>/checklist-items/<int:item_pk>/", views.tick_item, name="tick_item"),
    path(
        "releases/<int:pk>/checklists/<int:checklist_pk>/section/",
        views.tick_section,
        name="tick_section",
    ),
    path("releases/<int:pk>/sign/", views.sign, name="sign"),
]

if apps.is_installed("apps.incidents"):
    # The list only: each incident's own page (/incidents/<id>/) belongs to the incidents app.
    urlpatterns.append(path("incidents/", views.incident_list, name="incidents"))
