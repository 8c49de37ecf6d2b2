"""The rules import no I/O: the shared rules and every service's deciders load without
the database driver, the Kafka clients, FastStream or the HTTP stack."""

from __future__ import annotations

import json
import subprocess
import sys

RULES = (
    "services.rules",
    "services.offer_service.domain.offer",
    "services.offer_service.domain.contract",
    "services.messaging_service.domain",
    "services.notification_service.domain",
)
IO = ("pymongo", "aiokafka", "faststream", "starlette", "uvicorn", "httpx", "prometheus_client")


def test_the_rules_import_nothing_that_does_io() -> None:
    probe = (
        "import json, sys\n"
        + "".join(f"import {module}\n" for module in RULES)
        + f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({IO!r}))))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
    )
    assert loaded == []
