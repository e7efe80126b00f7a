"""The REST API under ``/api/`` (docs/api.md): agents, prompts, conversations, turns, tool
calls, reports and exports for scripts and other services.

House style (HackSoft Django-Styleguide): one ``APIView`` per action with nested
``InputSerializer``/``OutputSerializer``; a view validates, calls a service or a selector and
serializes. Roles come from the dashboard (:mod:`parley.platform.dashboard.roles`); clients
authenticate with ``Authorization: Token <key>`` (``manage.py drf_create_token USER``) or the
dashboard's session.
"""
