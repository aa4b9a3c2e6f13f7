"""Pages: the on-call page, incidents, and the acknowledge / resolve targets of emailed links."""

from django.urls import path

from . import views

app_name = "incidents"

urlpatterns = [
    path("oncall/", views.oncall, name="oncall"),
    path("incidents/<int:pk>/", views.detail, name="detail"),
    path(
        "incidents/<int:pk>/acknowledge/", views.act, {"action": "acknowledge"}, name="acknowledge"
    ),
    path("incidents/<int:pk>/mitigate/", views.act, {"action": "mitigate"}, name="mitigate"),
    path("incidents/<int:pk>/resolve/", views.act, {"action": "resolve"}, name="resolve"),
    path("incidents/<int:pk>/reopen/", views.act, {"action": "reopen"}, name="reopen"),
]
