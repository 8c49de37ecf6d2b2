"""Offer terms (SPEC §3): the models (shape rules) and the pure cross-field/clock/policy rules.

Shape rules live in the models, so parsing reports them. Rules that relate fields to each
other, to today's date or to the compliance policy are in :func:`terms_violations`, a pure
function: the caller passes ``today`` (UTC) and ``max_contract_days``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    Field,
    JsonValue,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from contracts.base import (
    FREE_TEXT_PATTERN,
    INT64_MAX,
    INT64_MIN,
    Date,
    FreeText,
    Id,
    Message,
    Money,
    NonBlank,
    SingleLine,
)
from contracts.currencies import CURRENCY_CODES
from contracts.errors import CUSTOM_FIELD_KEY_PATTERN, FieldError, errors_from_validation, join_path

__all__ = [
    "ContractType",
    "CustomFields",
    "FixedTerms",
    "HourlyTerms",
    "Milestone",
    "OfferTerms",
    "TermsChanges",
    "TermsDifference",
    "apply_changes",
    "check_terms",
    "proposed_terms",
    "terms_differences",
    "terms_violations",
]

ContractType = Literal["hourly", "fixed"]

MAX_START_AHEAD_DAYS: Final = 730
"""An offer starts within two years: further ahead is a typo, not a plan."""

Title = Annotated[str, StringConstraints(min_length=1, max_length=200), SingleLine, NonBlank]
Description = Annotated[str, StringConstraints(min_length=1, max_length=10_000), FreeText, NonBlank]
MilestoneDescription = Annotated[
    str, StringConstraints(min_length=1, max_length=1_000), FreeText, NonBlank
]
PoNumber = Annotated[str, StringConstraints(min_length=1, max_length=64), SingleLine]
WeeklyLimitHours = Annotated[int, Field(strict=True, ge=1, le=168)]


def _currency(value: object) -> str:
    if not isinstance(value, str) or value not in CURRENCY_CODES:
        raise PydanticCustomError(
            "currency", "must be an ISO 4217 currency code in capitals, like USD"
        )
    return value


Currency = Annotated[
    str,
    AfterValidator(_currency),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCY_CODES)}, mode="validation"),
]


def _custom_value(value: object) -> str | bool | int | float:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return value
        raise PydanticCustomError("custom_field_value", "must be an integer of at most 64 bits")
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise PydanticCustomError("custom_field_value", "must be a finite number")
    if isinstance(value, str):
        if len(value) > 1_000:
            raise PydanticCustomError("custom_field_value", "must be at most 1000 characters")
        if not re.fullmatch(FREE_TEXT_PATTERN, value):
            raise PydanticCustomError(
                "custom_field_value", "must not contain control characters but newline and tab"
            )
        return value
    raise PydanticCustomError(
        "custom_field_value", "must be a string (at most 1000 characters), a number or a boolean"
    )


CustomFieldValue = Annotated[
    str | bool | int | float,
    PlainValidator(_custom_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": 1000, "pattern": FREE_TEXT_PATTERN},
                {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
                {"type": "number"},
                {"type": "boolean"},
            ]
        },
        mode="validation",
    ),
]
CustomFieldKey = Annotated[str, StringConstraints(pattern=CUSTOM_FIELD_KEY_PATTERN)]
CustomFields = Annotated[dict[CustomFieldKey, CustomFieldValue], Field(max_length=50)]


class Milestone(Message):
    description: MilestoneDescription
    amount: Money
    due_date: Date | None = None


class _Terms(Message):
    title: Title
    description: Description
    contract_type: ContractType
    currency: Currency = "USD"
    start_date: Date
    end_date: Date
    talent_cloud_id: Id | None = None
    po_number: PoNumber | None = None
    custom_fields: CustomFields | None = None


class HourlyTerms(_Terms):
    contract_type: Literal["hourly"] = "hourly"
    hourly_rate: Money
    weekly_limit_hours: WeeklyLimitHours | None = None


class FixedTerms(_Terms):
    contract_type: Literal["fixed"] = "fixed"
    total_amount: Money
    milestones: Annotated[list[Milestone], Field(min_length=1, max_length=50)]


OfferTerms = Annotated[HourlyTerms | FixedTerms, Field(discriminator="contract_type")]
OFFER_TERMS_ADAPTER: Final[TypeAdapter[HourlyTerms | FixedTerms]] = TypeAdapter(OfferTerms)

_VARIANT_FIELDS: Final = {
    "hourly": ("hourly_rate", "weekly_limit_hours"),
    "fixed": ("total_amount", "milestones"),
}
_NOT_REMOVABLE: Final = (
    "title",
    "description",
    "contract_type",
    "currency",
    "start_date",
    "end_date",
    "hourly_rate",
    "total_amount",
    "milestones",
)


class TermsChanges(Message):
    """A partial terms object (``ProposeTerms.changes``): only the fields to change.

    At least one field. ``null`` removes an optional field (``po_number``, ...); a required one
    cannot be removed. Serialises only the fields that were given.
    """

    title: Title | None = None
    description: Description | None = None
    contract_type: ContractType | None = None
    currency: Currency | None = None
    hourly_rate: Money | None = None
    weekly_limit_hours: WeeklyLimitHours | None = None
    total_amount: Money | None = None
    milestones: Annotated[list[Milestone], Field(min_length=1, max_length=50)] | None = None
    start_date: Date | None = None
    end_date: Date | None = None
    talent_cloud_id: Id | None = None
    po_number: PoNumber | None = None
    custom_fields: CustomFields | None = None

    @field_validator(*_NOT_REMOVABLE, mode="before")
    @classmethod
    def _not_removed(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError("not_removable", "cannot be removed (null)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TermsChanges:
        if not self.model_fields_set:
            raise PydanticCustomError("empty_changes", "must change at least one terms field")
        return self

    @model_serializer(mode="wrap")
    def _only_given(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set}


class TermsDifference(Message):
    """One changed terms field: JSON values (``null`` when absent)."""

    field: str
    current: JsonValue
    proposed: JsonValue


# --- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RuleInputs:
    """What the cross-field rules need; ``None`` where the value is missing or malformed."""

    contract_type: str | None
    start: date | None
    end: date | None
    total: Decimal | None
    milestones: list[tuple[Decimal | None, date | None]] | None


def _inputs_from_terms(terms: HourlyTerms | FixedTerms) -> _RuleInputs:
    if isinstance(terms, FixedTerms):
        return _RuleInputs(
            "fixed",
            terms.start_date,
            terms.end_date,
            terms.total_amount,
            [(m.amount, m.due_date) for m in terms.milestones],
        )
    return _RuleInputs("hourly", terms.start_date, terms.end_date, None, None)


_DATE_ADAPTER: Final[TypeAdapter[date]] = TypeAdapter(Date)
_MONEY_ADAPTER: Final[TypeAdapter[Decimal]] = TypeAdapter(Money)


def _lenient(adapter: TypeAdapter[Any], data: Mapping[str, Any], key: str) -> Any:
    if key not in data:
        return None
    try:
        return adapter.validate_python(data[key])
    except ValidationError:
        return None


def _inputs_from_raw(raw: object) -> _RuleInputs | None:
    """Best effort from an unparsed terms object, so rules are reported beside shape errors."""
    if not isinstance(raw, Mapping):
        return None
    milestones: list[tuple[Decimal | None, date | None]] | None = None
    raw_milestones = raw.get("milestones")
    if isinstance(raw_milestones, list) and 1 <= len(raw_milestones) <= 50:
        milestones = [
            (_lenient(_MONEY_ADAPTER, m, "amount"), _lenient(_DATE_ADAPTER, m, "due_date"))
            if isinstance(m, Mapping)
            else (None, None)
            for m in raw_milestones
        ]
    contract_type = raw.get("contract_type")
    return _RuleInputs(
        contract_type if isinstance(contract_type, str) else None,
        _lenient(_DATE_ADAPTER, raw, "start_date"),
        _lenient(_DATE_ADAPTER, raw, "end_date"),
        _lenient(_MONEY_ADAPTER, raw, "total_amount"),
        milestones,
    )


def _violations(
    given: _RuleInputs, *, today: date, max_contract_days: int, prefix: str
) -> list[FieldError]:
    errors: list[FieldError] = []

    def add(message: str, *path: str | int) -> None:
        errors.append(FieldError(field=join_path(prefix, *path), message=message))

    start, end = given.start, given.end
    if start is not None and start < today:
        add(f"must not be before today ({today.isoformat()}, UTC)", "start_date")
    horizon = today + timedelta(days=MAX_START_AHEAD_DAYS)
    if start is not None and start > horizon:
        add(
            f"must be at most {MAX_START_AHEAD_DAYS} days after today"
            f" (on or before {horizon.isoformat()})",
            "start_date",
        )
    if start is not None and end is not None:
        latest = start + timedelta(days=max_contract_days)
        if end < start:
            add(f"must not be before start_date ({start.isoformat()})", "end_date")
        elif end > latest:
            add(
                f"must be at most {max_contract_days} days after start_date"
                f" (on or before {latest.isoformat()})",
                "end_date",
            )
    if given.contract_type == "fixed" and given.milestones is not None:
        amounts = [amount for amount, _ in given.milestones]
        if given.total is not None and all(a is not None for a in amounts):
            total = sum((a for a in amounts if a is not None), Decimal(0))
            if total != given.total:
                add(
                    f"must equal the sum of the milestone amounts ({total:.2f})",
                    "total_amount",
                )
        for index, (_, due) in enumerate(given.milestones):
            if due is None:
                continue
            if start is not None and due < start:
                add(
                    f"must not be before start_date ({start.isoformat()})",
                    "milestones",
                    index,
                    "due_date",
                )
            elif end is not None and due > end:
                add(
                    f"must not be after end_date ({end.isoformat()})",
                    "milestones",
                    index,
                    "due_date",
                )
    return errors


def terms_violations(
    terms: HourlyTerms | FixedTerms,
    *,
    today: date,
    max_contract_days: int,
    prefix: str = "terms",
) -> list[FieldError]:
    """Every cross-field, clock and policy rule of SPEC §3 that ``terms`` breaks.

    ``today`` is the UTC day the offer is sent; ``max_contract_days`` the compliance policy
    (``MAX_CONTRACT_DAYS``, default 180). Shape rules are the models' job.
    """
    return _violations(
        _inputs_from_terms(terms), today=today, max_contract_days=max_contract_days, prefix=prefix
    )


def raw_terms_violations(
    raw: object, *, today: date, max_contract_days: int, prefix: str = "terms"
) -> list[FieldError]:
    """:func:`terms_violations` on an unparsed terms object, skipping rules whose fields are
    missing or malformed (those already have shape errors)."""
    given = _inputs_from_raw(raw)
    if given is None:
        return []
    return _violations(given, today=today, max_contract_days=max_contract_days, prefix=prefix)


def check_terms(
    data: object,
    *,
    today: date,
    max_contract_days: int,
    prefix: str = "terms",
) -> tuple[HourlyTerms | FixedTerms | None, list[FieldError]]:
    """Validate a terms object (a dict from JSON) fully: ``(terms, [])`` or ``(None, errors)``
    with every shape error and every rule that could be checked."""
    try:
        terms = OFFER_TERMS_ADAPTER.validate_python(data)
    except ValidationError as exc:
        errors = errors_from_validation(exc, prefix)
        extra = raw_terms_violations(
            data, today=today, max_contract_days=max_contract_days, prefix=prefix
        )
        return None, errors + [e for e in extra if e not in errors]
    errors = terms_violations(
        terms, today=today, max_contract_days=max_contract_days, prefix=prefix
    )
    return (None, errors) if errors else (terms, [])


# --- negotiation helpers ---------------------------------------------------------------------


def apply_changes(terms: HourlyTerms | FixedTerms, changes: TermsChanges) -> dict[str, Any]:
    """The current terms with ``changes`` applied, as a JSON-ready dict (not yet validated).

    A changed ``contract_type`` drops the fields of the old type that ``changes`` does not
    repeat (so the stale ``hourly_rate`` does not block a switch to fixed). ``null`` in
    ``changes`` removes an optional field.
    """
    merged = terms.model_dump(mode="json", exclude_none=True)
    given = changes.model_dump(mode="json")
    new_type = given.get("contract_type", terms.contract_type)
    if new_type != terms.contract_type:
        for name in _VARIANT_FIELDS[terms.contract_type]:
            merged.pop(name, None)
    merged.update(given)
    return {k: v for k, v in merged.items() if v is not None}


def proposed_terms(
    current: HourlyTerms | FixedTerms,
    changes: TermsChanges,
    *,
    today: date,
    max_contract_days: int,
    prefix: str = "changes",
) -> tuple[HourlyTerms | FixedTerms | None, list[FieldError]]:
    """Apply ``changes`` and check the result against all of SPEC §3 (paths under ``prefix``)."""
    return check_terms(
        apply_changes(current, changes),
        today=today,
        max_contract_days=max_contract_days,
        prefix=prefix,
    )


def terms_differences(
    current: HourlyTerms | FixedTerms, proposed: HourlyTerms | FixedTerms
) -> list[TermsDifference]:
    """The fields whose JSON values differ, in field order (``None`` where a field is absent)."""
    before = current.model_dump(mode="json")
    after = proposed.model_dump(mode="json")
    names = list(before) + [name for name in after if name not in before]
    return [
        TermsDifference(field=name, current=before.get(name), proposed=after.get(name))
        for name in names
        if before.get(name) != after.get(name)
    ]
