from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """What operators watch: the system status (API and admin) and the Prometheus metrics.

    It sits on top of the other apps: it may import config, accounts, clusters and gitops, and
    nothing imports it.
    """

    name = "operations"
    verbose_name = "Operations"
