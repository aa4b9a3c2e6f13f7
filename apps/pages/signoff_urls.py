"""The sign-off page, and a plain sign-in for stakeholders who have no admin access.

The namespace stays "signoffs" (signoffs:page, signoffs:login): emailed links and templates
name them so.
"""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import signoff_page

app_name = "signoffs"

urlpatterns = [
    path("releases/<int:pk>/signoff/", signoff_page.signoff_page, name="page"),
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
