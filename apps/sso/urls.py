"""Single sign-on's URLs, mounted before the others (rolloutdesk/urls.py).

Its sign-out has the local one's path, so the pages' Sign out button ends both sessions; its
admin sign-in sends people to the one sign-in page when password sign-in is off. While
OIDC_ISSUER is unset both act as the local ones and the /oidc/ views answer 404.
"""

from django.urls import path

from . import views

urlpatterns = [
    path("oidc/authenticate/", views.Authenticate.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", views.Callback.as_view(), name="oidc_authentication_callback"),
    path("accounts/logout/", views.SignOut.as_view(), name="oidc_logout"),
    path("admin/login/", views.admin_sign_in, name="sso_admin_login"),
]
