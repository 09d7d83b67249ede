from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"
    verbose_name = "Clients and clusters"

    def ready(self) -> None:
        from clusters import checks  # noqa: F401  (registers the deploy check)
