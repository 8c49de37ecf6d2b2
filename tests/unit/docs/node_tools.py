"""The pinned Node tools under tools/asyncapi/: AsyncAPI's parser, Modelina and tsc.

`make asyncapi-tools` installs them (`make unit` and `make test` do it first). Missing Node or
a missing install fails the test saying so: these checks are never skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[3]
TOOLS: Final = ROOT / "tools" / "asyncapi"
INSTALLED: Final = TOOLS / "node_modules" / ".installed"
TSC: Final = TOOLS / "node_modules" / "typescript" / "bin" / "tsc"


def run_node(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`node <args>` from the repository's root, its output captured."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not on PATH: install Node.js 20 or newer with npm, then `make "
            "asyncapi-tools` (the AsyncAPI checks run AsyncAPI's own tools)",
            pytrace=False,
        )
    if not INSTALLED.exists():
        pytest.fail(
            f"AsyncAPI's tools are not installed in {TOOLS.relative_to(ROOT)}/node_modules: "
            "run `make asyncapi-tools` (`make unit` and `make test` do it first)",
            pytrace=False,
        )
    return subprocess.run(
        [node, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
