"""/api/auth/: sign-in (password form, or OAuth through Auth0), the
session, sign-out and personal API tokens. Sign-in and token creation are
rate limited per client address."""

from django.urls import include, path
from social_django import views as social_views

from accounts.api import views
from accounts.ratelimit import limited

# social-auth reverses "social:complete", so its two views keep that namespace.
social = [
    path("login/<str:backend>/", limited("signin")(social_views.auth), name="begin"),
    path(
        "complete/<str:backend>/",
        limited("signin")(social_views.complete),
        name="complete",
    ),
]

urlpatterns = [
    path(
        "login/",
        limited("signin", methods=("POST",))(views.SignInView.as_view()),
        name="login",
    ),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("session/", views.SessionView.as_view(), name="session"),
    path("tokens/", views.TokensView.as_view(), name="tokens"),
    path("tokens/<str:prefix>/", views.TokenView.as_view(), name="token"),
    path("", include((social, "social"), namespace="social")),
]
