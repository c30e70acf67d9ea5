from django.urls import path

from executions import views

app_name = "executions"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("runs/", views.run_list, name="list"),
    path("runs/live/", views.run_list_live, name="list-live"),
    path("runs/<str:execution_id>/", views.run_detail, name="detail"),
    path("runs/<str:execution_id>/live/", views.run_live, name="live"),
    path("runs/<str:execution_id>/events/", views.run_events, name="events"),
    path("runs/<str:execution_id>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<str:execution_id>/rerun/", views.run_rerun, name="rerun"),
    path("runs/<str:execution_id>/steps/<path:step>/", views.run_step, name="step"),
]
