"""The admin dashboard at ``/dashboard/``: agents, prompts, test calls, conversations.

Server-rendered Django templates (``frontend/templates/dashboard/``), one stylesheet and a
little vanilla JavaScript (``frontend/static/parley/dashboard.*``). Who may do what:
:mod:`parley.platform.dashboard.roles`; the pages: docs/dashboard.md.
"""
