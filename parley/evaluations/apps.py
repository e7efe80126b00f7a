from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "parley.evaluations"
    label = "evaluations"
    verbose_name = "Evaluations"
