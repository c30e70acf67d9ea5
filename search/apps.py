from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from noetl_site.logs import process_name
        from search import service

        # Only the long-lived web process indexes as things happen; a CLI
        # process catches up when it searches.
        if process_name() == "web" and service.enabled():
            service.start_background()
