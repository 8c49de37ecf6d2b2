"""Whether an event's schema still admits what consumers were promised: the changes that
break a consumer reading events for years.

Backward-incompatible, between the last released schema and the current one:
  * a field removed (a consumer reading it finds nothing);
  * a field newly required (an old event lacks it: a consumer that validates refuses it);
  * a type narrowed (a value the old schema allowed, the new one refuses);
  * an enum value, or an alternative of a union, removed.
Adding an optional field, an enum value or a type is compatible. The released schemas are
kept under contracts/schemas/released/ (`python -m contracts.schemas --release`), and
tests/unit/contracts/test_schema_compatibility.py holds each event to its last one.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def incompatibilities(old: Schema, new: Schema) -> list[str]:
    """What in `new` breaks a consumer of `old`, one line each (empty: compatible)."""
    return _compare(old, old, new, new, "")


def _resolve(node: Schema, root: Schema) -> Schema:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        node = root["$defs"][name]
    return node


def _alternatives(node: Schema, root: Schema) -> list[Schema]:
    node = _resolve(node, root)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return [a for branch in node[key] for a in _alternatives(branch, root)]
    return [node]


def _types(node: Schema) -> set[str]:
    if "const" in node:
        return {f"const {node['const']!r}"}
    kind = node.get("type")
    if kind is None:
        return {"any"}
    return set(kind) if isinstance(kind, list) else {kind}


def _name(node: Schema) -> str:
    return str(node.get("title") or sorted(_types(node)))


def _compare(old: Schema, old_root: Schema, new: Schema, new_root: Schema, path: str) -> list[str]:
    olds, news = _alternatives(old, old_root), _alternatives(new, new_root)
    if len(olds) > 1 or len(news) > 1:
        return _compare_unions(olds, old_root, news, new_root, path)
    old, new = olds[0], news[0]
    where = path.lstrip(".") or "the event"
    problems = []
    old_types, new_types = _types(old), _types(new)
    if "any" not in new_types and not old_types <= new_types:
        problems.append(f"{where}: type narrowed from {sorted(old_types)} to {sorted(new_types)}")
    if "enum" in new:
        removed = set(map(str, old.get("enum", ()))) - set(map(str, new["enum"]))
        if "enum" not in old:
            problems.append(f"{where}: narrowed to the values {sorted(map(str, new['enum']))}")
        elif removed:
            problems.append(f"{where}: enum value(s) removed: {sorted(removed)}")
    old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
    for field, schema in old_fields.items():
        if field not in new_fields:
            problems.append(f"{path}.{field}: removed".lstrip("."))
        else:
            problems += _compare(schema, old_root, new_fields[field], new_root, f"{path}.{field}")
    for field in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
        problems.append(f"{path}.{field}: newly required".lstrip("."))
    if "items" in old and "items" in new:
        problems += _compare(old["items"], old_root, new["items"], new_root, f"{path}[]")
    return problems


def _compare_unions(
    olds: list[Schema], old_root: Schema, news: list[Schema], new_root: Schema, path: str
) -> list[str]:
    """Each old alternative must still be there (matched by title, or by type)."""
    problems = []
    by_name = {_name(node): node for node in news}
    for node in olds:
        match = by_name.get(_name(node))
        if match is None:
            where = path.lstrip(".") or "the event"
            problems.append(f"{where}: narrowed, alternative {_name(node)} removed")
        else:
            problems += _compare(node, old_root, match, new_root, path)
    return problems
