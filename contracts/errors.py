"""Field errors: the ``{field, message}`` items of a ``CommandRejected``.

:func:`errors_from_validation` turns a pydantic ``ValidationError`` into dotted field paths a
person can read. Pydantic puts discriminated-union tags into error locations; they are removed:

* a leading segment that starts with an uppercase letter is a message ``type`` tag
  (``('ExtendOffer', 'terms', ...)``; field names are always snake_case);
* ``hourly``/``fixed`` as the first segment, or right after a top-level ``terms`` field, is the
  ``contract_type`` tag (``('terms', 'hourly', 'hourly_rate')`` becomes ``terms.hourly_rate``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from contracts.base import FREE_TEXT_PATTERN, ID_PATTERN, SINGLE_LINE_PATTERN, Message

__all__ = ["FieldError", "errors_from_validation", "join_path"]

TERMS_TAGS: Final = frozenset({"hourly", "fixed"})
# No "." or "$": MongoDB and FerretDB read them as paths and operators in a document's keys.
CUSTOM_FIELD_KEY_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"

_PATTERN_MESSAGES: Final = {
    ID_PATTERN: "must be an id: 1-64 characters of letters, digits and _ . : -",
    CUSTOM_FIELD_KEY_PATTERN: "must be 1-64 characters of letters, digits, _ and -",
    FREE_TEXT_PATTERN: "must not contain control characters (newline and tab are allowed)",
    SINGLE_LINE_PATTERN: "must be one line without control characters",
}


class FieldError(Message):
    """One violated rule: the dotted path of the field (``terms.milestones.2.due_date``)."""

    field: str
    message: str


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _printable(part: str | int) -> str:
    # A path part may be a key the sender chose: its control characters are written as
    # escapes, so a refusal never carries what it refuses (a NUL the database cannot hold).
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", str(part))


def join_path(*parts: str | int) -> str:
    """``join_path("terms", "milestones", 2)`` -> ``"terms.milestones.2"`` (empty parts skipped)."""
    return ".".join(_printable(p) for p in parts if p != "")


def _strip_tags(loc: Sequence[str | int]) -> tuple[list[str | int], str | None]:
    parts = list(loc)
    if parts and isinstance(parts[0], str) and parts[0][:1].isupper():
        del parts[0]
    terms_tag = None
    if parts and parts[0] in TERMS_TAGS:
        terms_tag = str(parts.pop(0))
    elif len(parts) >= 2 and parts[0] == "terms" and parts[1] in TERMS_TAGS:
        terms_tag = str(parts.pop(1))
    return parts, terms_tag


def _message(error: ErrorDetails, terms_tag: str | None) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "missing" or kind == "union_tag_not_found":
        return "is required"
    if kind == "extra_forbidden":
        if terms_tag is not None:
            return f"is not a field of {terms_tag} terms"
        return "is not a known field"
    if kind == "union_tag_invalid":
        return f"must be one of {ctx.get('expected_tags', '')}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "string_too_short":
        return f"must be at least {ctx['min_length']} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "string_pattern_mismatch":
        return _PATTERN_MESSAGES.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}")
    if kind == "string_type":
        return "must be a string"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind == "bool_type":
        return "must be true or false"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be an object"
    if kind == "list_type":
        return "must be a list"
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    message = error["msg"].removeprefix("Value error, ")
    for prefix in ("Input should", "String should", "List should", "Value should"):
        if message.startswith(prefix):
            return "must" + message.removeprefix(prefix)
    return message


def _one(error: ErrorDetails, prefix: str) -> FieldError:
    parts, terms_tag = _strip_tags(error["loc"])
    kind = error["type"]
    message = _message(error, terms_tag)
    if parts and parts[-1] == "[key]":
        parts.pop()
        message = f"key {message}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        parts.append(str(error.get("ctx", {}).get("discriminator", "type")).strip("'"))
    return FieldError(field=join_path(prefix, *parts), message=message)


def errors_from_validation(
    exc: ValidationError | Iterable[ErrorDetails], prefix: str = ""
) -> list[FieldError]:
    """The errors of a pydantic validation as ``FieldError``s, paths prefixed with ``prefix``.

    ``errors_from_validation(e, "terms")`` turns loc ``('hourly', 'hourly_rate')`` into
    ``terms.hourly_rate``. Duplicates are dropped; order is pydantic's (field order).
    """
    details = exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc
    result: list[FieldError] = []
    for error in details:
        item = _one(error, prefix)
        if item not in result:
            result.append(item)
    return result
