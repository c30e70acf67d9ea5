from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("api/worker/v1/", include("workers.api.urls")),
    path("admin/", admin.site.urls),
]
