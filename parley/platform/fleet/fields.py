"""Field names of the fleet models that plain settings need too (no model imports here)."""

from __future__ import annotations

#: ``LLMServer`` fields the fleet writes on its own (active and passive health, the routers'
#: snapshot): read-only in the admin, and no change to them is an admin change to audit.
SERVER_HEALTH_FIELDS = (
    "health",
    "consecutive_failures",
    "cooldown_until",
    "last_checked_at",
    "last_error",
    "live",
)
