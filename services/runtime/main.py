"""`python -m services.<name>`: configuration from the environment, then uvicorn, which
turns SIGTERM and Ctrl-C into a clean shutdown of the lifespan (broker, database, tasks)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette

from .config import ConfigError, Settings
from .logs import setup_logging


def run(name: str, default_port: int, create_app: Callable[[Settings], Starlette]) -> None:
    setup_logging(name)
    try:
        settings = Settings.from_env(name, default_port)
    except ConfigError as error:
        sys.exit(f"{name}: {error}")
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )

    def stop_process() -> None:
        # A clean shutdown, then exit status 1 below (a signal would end it as "killed").
        server.should_exit = True

    app.state.stop_process = stop_process
    server.run()
    if not server.started or app.state.starting.failed:
        sys.exit(1)
