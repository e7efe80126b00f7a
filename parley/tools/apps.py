from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "parley.tools"
    label = "tools"
