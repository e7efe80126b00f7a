from django.contrib import admin

from parley.platform.fleet.models import ModelPool


@admin.register(ModelPool)
class ModelPoolAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "kind", "model", "base_url")
    list_filter = ("kind",)
