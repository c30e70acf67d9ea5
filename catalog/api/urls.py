from django.urls import path

from catalog.api import views

app_name = "catalog-api"

urlpatterns = [
    path("", views.CatalogView.as_view(), name="catalog"),
    path("<path:path>/versions/", views.VersionsView.as_view(), name="versions"),
    path("<path:path>/", views.PlaybookView.as_view(), name="playbook"),
]
