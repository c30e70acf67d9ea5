from rest_framework.routers import SimpleRouter

from schedules.api import views

app_name = "schedules-api"

router = SimpleRouter()
router.register("", views.ScheduleViewSet, basename="schedule")
urlpatterns = router.urls
