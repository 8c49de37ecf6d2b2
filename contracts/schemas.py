"""JSON Schemas of every message, committed under ``contracts/schemas/<MessageName>.json``.

``python -m contracts.schemas`` rewrites them; ``python -m contracts.schemas --check`` exits 1
and lists the files that differ from the models (for CI). ``--release`` keeps each event's
schema, as of its ``schema_version``, under ``schemas/released/<Event>.v<N>.json``: the
history that consumers reading events for years hold us to (contracts.compat). The schemas
are in pydantic's *validation* mode: what a producer must send (money and times as strings,
``type`` required), and name their dialect, JSON Schema 2020-12 (pydantic's), in ``$schema``.
Events released before ``$schema`` was written are kept as released: the same dialect.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from contracts.base import Message
from contracts.commands import COMMAND_TYPES
from contracts.events import EVENT_TYPES

__all__ = [
    "DIALECT",
    "RELEASED_DIR",
    "SCHEMA_DIR",
    "check",
    "release",
    "released_path",
    "render",
    "version_of",
    "write",
]

SCHEMA_DIR: Final = Path(__file__).parent / "schemas"
RELEASED_DIR: Final = SCHEMA_DIR / "released"
MESSAGES: Final[dict[str, type[Message]]] = {**COMMAND_TYPES, **EVENT_TYPES}
# What pydantic writes, named so that a consumer's validator need not guess the dialect.
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def render(model: type[Message]) -> str:
    """The stable text of one message's schema: sorted keys, 2-space indent, final newline."""
    schema = {"$schema": DIALECT, **model.model_json_schema(mode="validation")}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _expected() -> dict[str, str]:
    return {f"{name}.json": render(model) for name, model in sorted(MESSAGES.items())}


def check(directory: Path = SCHEMA_DIR) -> list[str]:
    """The drift between the models and ``directory``: one line per file, empty when none."""
    expected = _expected()
    drift = []
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            drift.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != text:
            drift.append(f"differs: {path}")
    drift += [
        f"unexpected: {path}"
        for path in sorted(directory.glob("*.json"))
        if path.name not in expected
    ]
    return drift


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema (and delete schemas of messages that no longer exist)."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = _expected()
    for path in directory.glob("*.json"):
        if path.name not in expected:
            path.unlink()
    written = []
    for name, text in expected.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def version_of(model: type[Message]) -> int:
    """The event's `schema_version`: raised with each backward-incompatible change."""
    version: int = model.model_fields["schema_version"].default
    return version


def released_path(name: str, version: int, directory: Path = RELEASED_DIR) -> Path:
    return directory / f"{name}.v{version}.json"


def release(directory: Path = RELEASED_DIR) -> list[Path]:
    """Keeps the schema of every event version not released yet; never rewrites one."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in sorted(EVENT_TYPES.items()):
        path = released_path(name, version_of(model), directory)
        if not path.exists():
            path.write_text(render(model), encoding="utf-8")
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.schemas", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="schema directory")
    parser.add_argument(
        "--release", action="store_true", help="keep the event versions not released yet"
    )
    args = parser.parse_args(argv)
    if args.release:
        for path in release():
            print(f"released {path}")
        return 0
    if args.check:
        drift = check(args.dir)
        for line in drift:
            print(line, file=sys.stderr)
        if drift:
            print("run: python -m contracts.schemas", file=sys.stderr)
        return 1 if drift else 0
    paths = write(args.dir)
    print(f"{len(paths)} schemas in {args.dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
