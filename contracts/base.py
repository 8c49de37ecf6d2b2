"""Wire-level types and the base classes of every message.

Wire format decisions (SPEC §2), shared by every message:

* ``Money`` / ``Hours`` — a JSON *string* holding a positive decimal with at most 2 decimals
  (``"45"``, ``"45.5"`` and ``"45.00"`` are accepted). JSON numbers are rejected, so a float
  never becomes money. In Python the value is a :class:`decimal.Decimal`; it is always written
  back as a fixed 2-decimal string (``"45.00"``), so the serialised form is canonical.
* ``UtcDateTime`` — an RFC 3339 string in UTC (offset ``Z`` or ``+00:00``; anything else is
  rejected). In Python an aware :class:`datetime.datetime` in UTC; naive datetimes are rejected.
  Values are truncated to millisecond precision (what MongoDB stores), and written as
  ``2026-11-26T12:00:00Z``, or ``2026-11-26T12:00:00.250Z`` when the milliseconds are not zero.
* ``Date`` — ``YYYY-MM-DD`` string; a :class:`datetime.date` in Python.
* Integers and booleans are strict: ``"5"`` is not an int, ``true`` is not ``1``.

Every model validates both ways: ``Model.model_validate_json(raw_bytes)`` (the hot path) and
``Model.model_validate(dict_from_json_or_mongo)``; ``model_dump(mode="json")`` and
``model_dump_json()`` give the wire form (store ``model_dump(mode="json")`` in MongoDB: BSON has
no ``date``/``Decimal``). ``model_dump()`` keeps ``datetime``/``date`` objects but money is
always a string.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Final

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "Command",
    "Date",
    "EmailAddress",
    "Event",
    "FreeText",
    "Hours",
    "Id",
    "Int64",
    "Message",
    "Money",
    "NonBlank",
    "PositiveInt",
    "SingleLine",
    "UtcDateTime",
    "format_utc",
    "non_blank",
]

ID_PATTERN: Final = r"^[A-Za-z0-9_.:-]+$"

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
"""An opaque id: 1-64 characters of ``[A-Za-z0-9_.:-]``."""

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
Int64 = Annotated[int, Field(strict=True, ge=INT64_MIN, le=INT64_MAX)]
"""An integer a BSON document can hold (64 bits); larger ones are refused, not truncated."""

PositiveInt = Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]

# Control characters are refused in text: a NUL is refused by the database at write time
# (too late to answer the sender), and the others only hide text from the people reading it.
# Free text (descriptions, messages, memos) may hold newlines and tabs; one-line text may not.
FREE_TEXT_PATTERN: Final = r"^[^\x00-\x08\x0B-\x1F\x7F]*$"
SINGLE_LINE_PATTERN: Final = r"^[^\x00-\x1F\x7F]*$"
FreeText = StringConstraints(pattern=FREE_TEXT_PATTERN)
"""Put in an ``Annotated[str, ...]``: no control characters but newline and tab."""
SingleLine = StringConstraints(pattern=SINGLE_LINE_PATTERN)
"""Put in an ``Annotated[str, ...]``: no control characters at all."""


def non_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


NonBlank = AfterValidator(non_blank)
"""Put in an ``Annotated[str, ...]`` to reject strings that are only whitespace."""


def _email_address(value: str) -> str:
    # Syntax only (no DNS: a command is checked the same way offline, in the CLI too); the
    # normalized form (the domain lower-cased, IDNA) is the one stored and written to.
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError as error:
        raise PydanticCustomError(
            "email_invalid", "is not a valid email address: {reason}", {"reason": str(error)}
        ) from None


EmailAddress = Annotated[
    str,
    StringConstraints(min_length=3, max_length=254),
    SingleLine,
    AfterValidator(_email_address),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "minLength": 3,
            "maxLength": 254,
            "description": "An email address (checked with email-validator, syntax only).",
            "examples": ["bob@example.com"],
        },
        mode="validation",
    ),
]
"""An email address, normalized (email-validator)."""


# --- decimals --------------------------------------------------------------------------------

_DECIMAL_RE: Final = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_POSITIVE_DECIMAL_SCHEMA_PATTERN: Final = r"^(?!0*(\.0*)?$)[0-9]{1,12}(\.[0-9]{1,2})?$"
_CENT: Final = Decimal("0.01")


def _parse_decimal(value: object) -> Decimal:
    if isinstance(value, str):
        if not _DECIMAL_RE.fullmatch(value):
            raise PydanticCustomError(
                "decimal_string_format",
                'must be a decimal string with at most 2 decimals, like "45.00"',
            )
        result = Decimal(value)
    elif isinstance(value, Decimal):
        try:
            exact = value.is_finite() and value == value.quantize(_CENT)
        except InvalidOperation:
            exact = False
        if not exact or value.is_signed() or value >= Decimal("1e12"):
            raise PydanticCustomError(
                "decimal_string_format", "must be a decimal with at most 2 decimals"
            )
        result = value
    else:
        raise PydanticCustomError(
            "decimal_string_type", 'must be a decimal string like "45.00", not a JSON number'
        )
    if result <= 0:
        raise PydanticCustomError("not_positive", "must be greater than 0")
    return result


def _check_hours(value: Decimal) -> Decimal:
    if value > 24:
        raise PydanticCustomError("hours_over_24", "must be at most 24")
    return value


def _format_decimal(value: Decimal) -> str:
    return f"{value.quantize(_CENT):f}"


_decimal_serializer = PlainSerializer(_format_decimal, return_type=str, when_used="always")

Money = Annotated[
    Decimal,
    BeforeValidator(_parse_decimal),
    _decimal_serializer,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _POSITIVE_DECIMAL_SCHEMA_PATTERN,
            "description": "Amount > 0 as a decimal string with at most 2 decimals.",
            "examples": ["45.00"],
        },
        mode="validation",
    ),
]
"""Positive money amount: a decimal string on the wire, ``Decimal`` in Python."""

Hours = Annotated[
    Decimal,
    BeforeValidator(_parse_decimal),
    AfterValidator(_check_hours),
    _decimal_serializer,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(?!0*(\.0*)?$)[0-9]{1,2}(\.[0-9]{1,2})?$",
            "description": "Hours > 0 and <= 24 as a decimal string with at most 2 decimals.",
            "examples": ["7.50"],
        },
        mode="validation",
    ),
]


# --- times -----------------------------------------------------------------------------------

# The calendar the platform accepts. Far enough either way for any real offer, contract or
# event, and far enough from the ends of Python's and BSON's calendars that no rule's date
# arithmetic (an end date 180 days after a start, a week's Monday) can overflow.
EARLIEST: Final = date(2000, 1, 1)
LATEST: Final = date(2199, 12, 31)


def _in_calendar(value: date) -> None:
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST <= day <= LATEST:
        raise PydanticCustomError(
            "date_out_of_range",
            f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}",
        )


_RFC3339_UTC_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)")
_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


def _to_millis(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000, tzinfo=UTC)


def _parse_utc_datetime(value: object) -> datetime:
    if isinstance(value, str):
        if not _RFC3339_UTC_RE.fullmatch(value):
            raise PydanticCustomError(
                "utc_datetime_format",
                'must be an RFC 3339 time in UTC, like "2026-11-26T12:00:00Z"',
            )
        head, dot, fraction = value[:19], value[19:20], value[20:]
        micros = 0
        if dot == ".":
            digits = fraction.removesuffix("Z").removesuffix("+00:00")
            micros = int(digits[:6].ljust(6, "0"))
        try:
            parsed = datetime.fromisoformat(head).replace(microsecond=micros, tzinfo=UTC)
        except ValueError:
            raise PydanticCustomError(
                "utc_datetime_format", "is not a valid date and time"
            ) from None
        _in_calendar(parsed)
        return _to_millis(parsed)
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise PydanticCustomError("utc_datetime_timezone", "must be a UTC date and time")
        _in_calendar(value)
        return _to_millis(value)
    raise PydanticCustomError(
        "utc_datetime_type", 'must be an RFC 3339 time string, like "2026-11-26T12:00:00Z"'
    )


def format_utc(value: datetime) -> str:
    """The wire form of a UTC time: ``2026-11-26T12:00:00Z`` (``.mmm`` only if nonzero)."""
    value = value.astimezone(UTC)
    text = value.replace(tzinfo=None, microsecond=0).isoformat()
    millis = value.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def _format_utc_json(value: datetime) -> str:
    return format_utc(value)


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(_parse_utc_datetime),
    PlainSerializer(_format_utc_json, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": r"^(20|21)\d{2}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$",
            "description": "RFC 3339 time in UTC, from 2000 to 2199.",
            "examples": ["2026-11-26T12:00:00Z"],
        },
        mode="validation",
    ),
]
"""An aware UTC datetime (millisecond precision); ``...Z`` string on the wire."""


def _parse_date(value: object) -> date:
    if isinstance(value, str):
        try:
            parsed = date.fromisoformat(value) if _DATE_RE.fullmatch(value) else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise PydanticCustomError("date_format", 'must be a date like "2026-12-01"')
        _in_calendar(parsed)
        return parsed
    if isinstance(value, date) and not isinstance(value, datetime):
        _in_calendar(value)
        return value
    raise PydanticCustomError("date_type", 'must be a date string like "2026-12-01"')


Date = Annotated[
    date,
    BeforeValidator(_parse_date),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "pattern": r"^(20|21)\d{2}-\d{2}-\d{2}$",
            "description": "A date from 2000-01-01 to 2199-12-31.",
        },
        mode="validation",
    ),
]
"""A calendar date, ``YYYY-MM-DD`` on the wire."""


# --- base models -----------------------------------------------------------------------------


def _require_tags(schema: dict[str, Any]) -> None:
    # `type`/`contract_type` have defaults so Python code need not repeat them, but they are
    # union tags: producers must send them. A tag is a constant; TermsChanges' optional
    # `contract_type` (any of the values, or absent) is not one.
    properties = schema.get("properties", {})
    for tag in ("contract_type", "type"):
        if "const" in properties.get(tag, {}) and tag not in schema.get("required", []):
            schema.setdefault("required", []).insert(0, tag)


class Message(BaseModel):
    """Base of every message and of every object nested in one (terms, milestones, ...).

    Unknown fields are rejected; ints and bools are strict; instances are immutable.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        json_schema_extra=_require_tags,
    )


class Command(Message):
    """A request to do something. ``KEY_FIELD`` names the field that is the Kafka key."""

    KEY_FIELD: ClassVar[str]

    type: str
    command_id: Id
    actor_id: Id
    issued_at: UtcDateTime | None = None

    @property
    def key(self) -> str:
        """The Kafka message key (the aggregate id)."""
        value = getattr(self, self.KEY_FIELD)
        assert isinstance(value, str)
        return value


class Event(Message):
    """A fact. ``KEY_FIELD`` names the field that is the Kafka key.

    Unlike commands, events ignore unknown top-level fields (tolerant reader): a producer may
    add an optional field without breaking consumers that have not upgraded yet.
    """

    model_config = ConfigDict(extra="ignore")

    KEY_FIELD: ClassVar[str]

    type: str
    event_id: Id
    schema_version: PositiveInt = 1
    occurred_at: UtcDateTime
    causation_id: Id

    @property
    def key(self) -> str:
        """The Kafka message key (the aggregate id)."""
        value = getattr(self, self.KEY_FIELD)
        assert isinstance(value, str)
        return value
