from django.urls import path

from workers.api import views

app_name = "worker-protocol"

urlpatterns = [
    path("workers", views.register, name="register"),
    path("workers/<str:worker_id>", views.deregister, name="deregister"),
    path("claim", views.claim, name="claim"),
    path("heartbeat", views.heartbeat, name="heartbeat"),
    path("report", views.report, name="report"),
    path("release", views.release, name="release"),
    path("credentials/<str:name>", views.credential, name="credential"),
    path("blobs/<str:sha256>", views.blob, name="blob"),
]
