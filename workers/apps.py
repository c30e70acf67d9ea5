from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        if settings.NOETL_NATS_URL:
            from executions import service
            from workers import dispatch

            if dispatch.on_commit not in service.listeners:
                service.listeners.append(dispatch.on_commit)
