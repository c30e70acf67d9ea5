from django.urls import path

from executions.api import views

app_name = "executions-api"

urlpatterns = [
    path("", views.ExecutionsView.as_view(), name="list"),
    path("<str:execution_id>/", views.ExecutionView.as_view(), name="detail"),
    path("<str:execution_id>/events/", views.EventsView.as_view(), name="events"),
    path("<str:execution_id>/logs/", views.LogsView.as_view(), name="logs"),
    path("<str:execution_id>/cancel/", views.CancelView.as_view(), name="cancel"),
    path("<str:execution_id>/rerun/", views.RerunView.as_view(), name="rerun"),
    path(
        "<str:execution_id>/variables/", views.VariablesView.as_view(), name="variables"
    ),
    path(
        "<str:execution_id>/variables/<str:name>/",
        views.VariableView.as_view(),
        name="variable",
    ),
]
