from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "parley.agents"
    label = "agents"
