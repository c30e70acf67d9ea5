from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from noetl_site import health
from noetl_site.graphql import graphql_view
from noetl_site.metrics import metrics_view
from search.views import SearchView

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/worker/v1/", include("workers.api.urls")),
    path("api/catalog/", include("catalog.api.urls")),
    path("api/executions/", include("executions.api.urls")),
    path("api/schedules/", include("schedules.api.urls")),
    path("api/search/", SearchView.as_view(), name="search"),
    path("api/", include("credentials.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/auth/", include("accounts.urls")),
    path("graphql", graphql_view, name="graphql"),
    path("admin/", admin.site.urls),
    path("schedules/", include("schedules.urls")),
    path("catalog/", include("catalog.urls")),
    path("workers/", include("workers.urls")),
    path("", include("executions.urls")),
]
