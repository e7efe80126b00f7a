from django.apps import AppConfig


class FleetConfig(AppConfig):
    name = "parley.platform.fleet"
    label = "fleet"
    verbose_name = "LLM fleet"
