from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("", views.playbook_list, name="list"),
    path("playbook/<path:path>", views.playbook_detail, name="playbook"),
    path("diff/<path:path>", views.playbook_diff, name="diff"),
    path("run/<path:path>", views.playbook_run, name="run"),
]
