from rest_framework.routers import SimpleRouter

from credentials.api import views

app_name = "credentials-api"

router = SimpleRouter()
router.register("credentials", views.CredentialViewSet, basename="credential")
router.register("keychain", views.KeychainViewSet, basename="keychain")
urlpatterns = router.urls
