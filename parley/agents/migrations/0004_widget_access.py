"""Publishable key and allowed origins for the browser widget (docs/widget.md)."""

from django.db import migrations, models

import parley.agents.models


def keys_fill(apps, schema_editor):  # noqa: ANN001, ANN201
    Agent = apps.get_model("agents", "Agent")
    for agent in Agent.objects.filter(publishable_key__isnull=True):
        agent.publishable_key = parley.agents.models.publishable_key_new()
        agent.save(update_fields=["publishable_key"])


class Migration(migrations.Migration):
    dependencies = [("agents", "0003_cloud_providers")]

    operations = [
        migrations.AddField(
            model_name="agent",
            name="publishable_key",
            field=models.CharField(max_length=40, null=True),
        ),
        migrations.RunPython(keys_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="agent",
            name="publishable_key",
            field=models.CharField(
                default=parley.agents.models.publishable_key_new,
                help_text="Public key of the embed snippet; exchanged for a short-lived call token.",
                max_length=40,
                unique=True,
            ),
        ),
        migrations.AddField(
            model_name="agent",
            name="allowed_origins",
            field=models.TextField(
                blank=True,
                help_text=(
                    "Web origins allowed to embed the widget, one per line, e.g. "
                    "https://www.example.com (scheme, host and port; no path). Empty: no web page."
                ),
            ),
        ),
    ]
