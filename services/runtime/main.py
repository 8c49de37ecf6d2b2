"""`python -m services.<name>`: configuration from the environment, then uvicorn, which
turns SIGTERM and Ctrl-C into a clean shutdown of the lifespan (broker, database, tasks)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Final

import uvicorn
from starlette.applications import Starlette

from .config import ConfigError, Settings
from .logs import setup_logging

# CPython's cyclic collector runs every 700 net allocations by default. A record allocates
# thousands of short-lived objects, nearly all freed by reference counting, and each pass
# scans the long-lived ones again (the state cache's documents): measured with a
# gc.callbacks probe under bench.throughput (2026-12-05), it took 13 % of
# notification_service's CPU and paused it for up to 104 ms. Every 50,000: 2 %, 25 ms.
GC_THRESHOLDS: Final = (50_000, 20, 10)


def tune_gc() -> None:
    """Called once start-up is done: what it made lives as long as the process, so it is
    frozen out of every collection, and the young generation is collected less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(name: str, default_port: int, create_app: Callable[[Settings], Starlette]) -> None:
    setup_logging(name)
    try:
        settings = Settings.from_env(name, default_port)
    except ConfigError as error:
        sys.exit(f"{name}: {error}")
    app = create_app(settings)
    tune_gc()
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
