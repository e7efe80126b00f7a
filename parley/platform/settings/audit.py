"""The audit log of admin changes (django-auditlog; docs/security.md).

Who changed which agent, prompt, tool schema, scenario, model pool, LLM server or role, when,
with the fields' values before and after. Reads of conversations have their own log
(``conversations.AccessLog``).
"""

from __future__ import annotations

from parley.platform.fleet.fields import SERVER_HEALTH_FIELDS

#: Models whose creation, change and deletion are recorded. Fields that change on their own
#: (the fleet's health state, timestamps) are left out, so a row means a person changed
#: something; ``User.password`` is never recorded (a hash, and not a setting).
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {"model": "agents.Agent", "m2m_fields": {"tools"}, "exclude_fields": ["updated_at"]},
    "agents.PromptVersion",
    "agents.Scenario",
    "tools.ToolSchema",
    "fleet.ModelPool",
    {"model": "fleet.LLMServer", "exclude_fields": list(SERVER_HEALTH_FIELDS)},
    {
        "model": "auth.User",
        "m2m_fields": {"groups"},
        "exclude_fields": ["password", "last_login"],
    },
    "auth.Group",
)
#: Changes as JSON values (not their string forms), so before/after keep their types.
AUDITLOG_STORE_JSON_CHANGES = True
#: Foreign keys shown by name (``model_pool: simulator → vllm``), not by primary key.
AUDITLOG_USE_FK_STRING_REPRESENTATION = True
