"""Wire types: Id, Money, Hours, UtcDateTime, Date and strict ints (SPEC §2)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from contracts import Date, FieldError, Hours, Id, Money, UtcDateTime, errors_from_validation
from contracts.base import Message, format_utc

money: TypeAdapter[Decimal] = TypeAdapter(Money)
hours: TypeAdapter[Decimal] = TypeAdapter(Hours)
utc: TypeAdapter[datetime] = TypeAdapter(UtcDateTime)
day: TypeAdapter[date] = TypeAdapter(Date)
ident: TypeAdapter[str] = TypeAdapter(Id)


class Priced(Message):
    price: Money


def json_errors(adapter: TypeAdapter[Any], value: Any) -> list[FieldError]:
    with pytest.raises(ValidationError) as info:
        adapter.validate_json(json.dumps(value))
    return errors_from_validation(info.value)


# --- Money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("45.00", "45.00"), ("45", "45.00"), ("45.5", "45.50"), ("0.01", "0.01"), ("007", "7.00")],
)
def test_money_accepts_decimal_strings_and_writes_two_decimals(text: str, expected: str) -> None:
    value = money.validate_json(json.dumps(text))
    assert value == Decimal(text)
    assert money.dump_json(value) == json.dumps(expected).encode()
    assert money.validate_python(text) == value


@pytest.mark.parametrize("number", [45, 45.0, 0.1, True])
def test_money_rejects_json_numbers(number: Any) -> None:
    [error] = json_errors(money, number)
    assert error.message == 'must be a decimal string like "45.00", not a JSON number'


@pytest.mark.parametrize(
    "text", ["45.001", "1e3", "-1.00", "+1", " 45", "45 ", "NaN", "Infinity", "", "4,5", "45."]
)
def test_money_rejects_malformed_strings(text: str) -> None:
    [error] = json_errors(money, text)
    assert "at most 2 decimals" in error.message


@pytest.mark.parametrize("text", ["0", "0.00", "00.0"])
def test_money_must_be_positive(text: str) -> None:
    assert json_errors(money, text) == [FieldError(field="", message="must be greater than 0")]


def test_money_in_python_accepts_decimal_but_not_float() -> None:
    assert Priced(price=Decimal("45.5")).model_dump() == {"price": "45.50"}
    with pytest.raises(ValidationError):
        Priced.model_validate({"price": 45.5})
    with pytest.raises(ValidationError):
        Priced(price=Decimal("45.555"))
    with pytest.raises(ValidationError):
        Priced(price=Decimal("NaN"))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_money_never_accepts_a_float(value: float) -> None:
    with pytest.raises(ValidationError):
        money.validate_json(json.dumps(value))
    with pytest.raises(ValidationError):
        money.validate_python(value)


@given(st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=2))
def test_money_accepts_exactly_the_positive_two_decimal_amounts(value: Decimal) -> None:
    text = f"{value:f}"
    if value > 0:
        assert money.validate_json(json.dumps(text)) == value
    else:
        with pytest.raises(ValidationError):
            money.validate_json(json.dumps(text))


@given(
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1e6"), places=3).filter(
        lambda d: d != d.quantize(Decimal("0.01"))
    )
)
def test_money_rejects_more_than_two_decimals(value: Decimal) -> None:
    with pytest.raises(ValidationError):
        money.validate_json(json.dumps(f"{value:f}"))
    with pytest.raises(ValidationError):
        money.validate_python(value)


# --- Hours -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0.25", "8", "24", "24.00"])
def test_hours_accepts_up_to_24(text: str) -> None:
    assert hours.validate_json(json.dumps(text)) == Decimal(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("24.01", "must be at most 24"),
        ("0", "must be greater than 0"),
        (8, 'must be a decimal string like "45.00", not a JSON number'),
        ("7.555", 'must be a decimal string with at most 2 decimals, like "45.00"'),
    ],
)
def test_hours_rejects(value: Any, message: str) -> None:
    assert json_errors(hours, value) == [FieldError(field="", message=message)]


# --- UtcDateTime -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("2026-11-26T12:00:00Z", "2026-11-26T12:00:00Z"),
        ("2026-11-26T12:00:00+00:00", "2026-11-26T12:00:00Z"),
        ("2026-11-26T12:00:00.5Z", "2026-11-26T12:00:00.500Z"),
        ("2026-11-26T12:00:00.123456789Z", "2026-11-26T12:00:00.123Z"),
        ("2026-11-26T12:00:00.000Z", "2026-11-26T12:00:00Z"),
    ],
)
def test_utc_datetime_parses_rfc3339_utc_and_writes_z(text: str, wire: str) -> None:
    value = utc.validate_json(json.dumps(text))
    assert value.tzinfo is UTC
    assert utc.dump_json(value) == json.dumps(wire).encode()
    assert utc.validate_python(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T12:00:00",
        "2026-11-26T13:00:00+01:00",
        "2026-11-26T12:00:00-00:00",
        "2026-11-26 12:00:00Z",
        "2026-11-26",
        "2026-02-30T12:00:00Z",
        "1764158400",
    ],
)
def test_utc_datetime_rejects_non_utc_or_malformed(text: str) -> None:
    assert len(json_errors(utc, text)) == 1


def test_utc_datetime_rejects_numbers_and_naive_or_offset_datetimes() -> None:
    assert json_errors(utc, 1764158400)[0].message.startswith("must be an RFC 3339 time")
    with pytest.raises(ValidationError):
        utc.validate_python(datetime(2026, 11, 26, 12))
    with pytest.raises(ValidationError):
        utc.validate_python(datetime(2026, 11, 26, 12, tzinfo=timezone(timedelta(hours=1))))


def test_utc_datetime_accepts_aware_utc_and_truncates_to_milliseconds() -> None:
    value = utc.validate_python(datetime(2026, 11, 26, 12, 0, 0, 123999, tzinfo=UTC))
    assert value.microsecond == 123000
    assert format_utc(value) == "2026-11-26T12:00:00.123Z"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2199, 12, 31), timezones=st.just(UTC)
    )
)
def test_utc_datetime_round_trips(value: datetime) -> None:
    parsed = utc.validate_python(value)
    assert utc.validate_json(utc.dump_json(parsed)) == parsed


# --- Date and Id -----------------------------------------------------------------------------


def test_date_accepts_yyyy_mm_dd_only() -> None:
    assert day.validate_json('"2026-12-01"') == date(2026, 12, 1)
    assert day.dump_json(date(2026, 12, 1)) == b'"2026-12-01"'
    for bad in ["2026-12-1", "2026-02-30", "2026-12-01T00:00:00Z", "20261201"]:
        assert json_errors(day, bad)[0].message == 'must be a date like "2026-12-01"'
    assert json_errors(day, 20261201)[0].message == 'must be a date string like "2026-12-01"'
    with pytest.raises(ValidationError):
        day.validate_python(datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "good", ["a", "A-z_0.9:x", "x" * 64, "550e8400-e29b-41d4-a716-446655440000"]
)
def test_id_accepts(good: str) -> None:
    assert ident.validate_json(json.dumps(good)) == good


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "must not be empty"),
        ("x" * 65, "must be at most 64 characters"),
        ("a b", "must be an id: 1-64 characters of letters, digits and _ . : -"),
        ("é", "must be an id: 1-64 characters of letters, digits and _ . : -"),
        (5, "must be a string"),
    ],
)
def test_id_rejects(bad: Any, message: str) -> None:
    assert json_errors(ident, bad) == [FieldError(field="", message=message)]
