"""``manage.py serve``: the production server (Daphne) with a graceful drain on SIGTERM.

Daphne's own signal handling stops the reactor at once, cutting every call mid-sentence. Here
Daphne's ``Server`` runs with its signal handlers off and ours installed on its event loop:
SIGTERM or SIGINT starts a drain (parley.platform.lifecycle.drain): new calls are refused
(``server_draining``), ``/readyz`` answers 503, the live calls get PARLEY_DRAIN_GRACE_S seconds
to finish, the rest are ended politely (a spoken goodbye, ``call.ended`` with reason
``server_shutdown``); then the server stops and the process exits 0. A second signal during
the drain stops at once. docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve Parley (HTTP and call WebSockets, Daphne); SIGTERM drains the calls first."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: all)")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--grace-s",
            type=float,
            default=None,
            help="seconds live calls get on SIGTERM (default: PARLEY_DRAIN_GRACE_S)",
        )
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="trust X-Forwarded-For/-Port/-Proto from a reverse proxy in front",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Importing daphne.server installs Twisted's asyncio reactor: do it here, not at import.
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server
        from twisted.internet import reactor

        from parley.platform.asgi import application
        from parley.platform.lifecycle import drain

        grace_s = options["grace_s"]
        if grace_s is None:
            grace_s = settings.PARLEY_DRAIN_GRACE_S
        proxy = options["proxy_headers"]
        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(
                host=options["host"], port=options["port"]
            ),
            signal_handlers=False,
            proxy_forwarded_address_header="X-Forwarded-For" if proxy else None,
            proxy_forwarded_port_header="X-Forwarded-Port" if proxy else None,
            proxy_forwarded_proto_header="X-Forwarded-Proto" if proxy else None,
            server_name="parley",
        )
        tasks: set[asyncio.Task[None]] = set()

        async def drain_then_stop() -> None:
            try:
                ended = await drain(grace_s=grace_s)
                logger.warning("drained (%d calls ended by the server); stopping", ended)
            finally:
                reactor.stop()  # type: ignore[attr-defined]

        def on_signal(signum: int) -> None:
            if tasks:
                logger.warning("second %s: stopping now", signal.Signals(signum).name)
                reactor.stop()  # type: ignore[attr-defined]
                return
            logger.warning("%s: draining", signal.Signals(signum).name)
            tasks.add(asyncio.get_running_loop().create_task(drain_then_stop(), name="drain"))

        def install_signal_handlers() -> None:
            loop = asyncio.get_event_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, on_signal, signum)
            self.stdout.write(
                f"Parley serving on http://{options['host']}:{options['port']} "
                f"(SIGTERM drains, grace {grace_s:g} s)",
            )
            self.stdout.flush()

        reactor.callWhenRunning(install_signal_handlers)  # type: ignore[attr-defined]
        server.run()
