"""Pages: the sign-off page, and a plain sign-in for stakeholders who have no admin access."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import views

app_name = "signoffs"

urlpatterns = [
    path("releases/<int:pk>/signoff/", views.signoff_page, name="page"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="signoffs/login.html"),
        name="login",
    ),
    path(
        "accounts/logout/",
        auth_views.LogoutView.as_view(next_page=reverse_lazy("signoffs:login")),
        name="logout",
    ),
]
