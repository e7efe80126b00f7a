"""Forms of the Reports and Exports pages: which agent and day to report on, which dates to
export. Dates are UTC calendar days."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from parley.agents.models import Agent
from parley.conversations.analytics import day_window


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class _AgentChoices:
    fields: dict[str, forms.Field]

    def agents_show(self, agents: list[Agent]) -> None:
        """Render the agent select from ``agents``, already loaded by the view, instead of
        querying them again (validation still checks the posted slug against the table)."""
        field = self.fields["agent"]
        empty = [("", field.empty_label)] if field.empty_label is not None else []
        field.choices = [*empty, *((a.slug, a.name) for a in agents)]  # type: ignore[attr-defined]


class ReportGenerateForm(_AgentChoices, forms.Form):
    """An agent and a UTC day to (re)generate the report of."""

    agent = forms.ModelChoiceField(
        queryset=Agent.objects.order_by("name"), to_field_name="slug", empty_label=None
    )
    day = forms.DateField(widget=DateInput(), help_text="UTC day.")


class ExportForm(_AgentChoices, forms.Form):
    """A range of UTC days, both included, an optional agent and whether to redact."""

    since = forms.DateField(label="From", widget=DateInput(), help_text="First day (UTC).")
    until = forms.DateField(label="To", widget=DateInput(), help_text="Last day, included.")
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="All agents",
    )
    redact = forms.BooleanField(
        required=False,
        label="Redact personal data",
        help_text="Phone numbers, e-mail addresses and full dates are replaced by [PHONE], "
        "[EMAIL] and [DOB] (a date of birth) or [DATE].",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "The last day must not come before the first.")
        return data

    def range(self) -> tuple[dt.datetime, dt.datetime]:
        """The valid form's days as ``[since 00:00 UTC, the day after until 00:00 UTC)``."""
        return day_window(self.cleaned_data["since"])[0], day_window(self.cleaned_data["until"])[1]
