"""Offer terms (SPEC §3): every rule, accepted and rejected, with the exact field path."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import (
    OFFER_TERMS_ADAPTER,
    FieldError,
    FixedTerms,
    HourlyTerms,
    TermsChanges,
    TermsDifference,
    apply_changes,
    check_terms,
    errors_from_validation,
    proposed_terms,
    terms_differences,
    terms_violations,
)
from contracts.terms import MAX_START_AHEAD_DAYS, raw_terms_violations
from tests.unit.contracts.contracts_examples import RULES, TODAY, fixed, hourly


def errors(data: Any, **rules: Any) -> list[FieldError]:
    terms, found = check_terms(data, **{**RULES, **rules})
    assert (terms is None) == bool(found)
    return found


def fields(data: Any, **rules: Any) -> list[str]:
    return [e.field for e in errors(data, **rules)]


def test_the_spec_example_is_valid() -> None:
    terms, found = check_terms(hourly(), **RULES)
    assert found == []
    assert isinstance(terms, HourlyTerms)
    assert terms.hourly_rate == Decimal("45.00")
    assert terms.custom_fields == {"cost_center": "R&D-12", "billable": True}


def test_a_fixed_example_is_valid() -> None:
    terms, found = check_terms(fixed(), **RULES)
    assert found == []
    assert isinstance(terms, FixedTerms)
    assert [m.amount for m in terms.milestones] == [Decimal(500), Decimal(300)]


# --- title and description -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["title", "description"])
@pytest.mark.parametrize(
    ("value", "message"),
    [("", "must not be empty"), ("   ", "must not be blank"), (None, "must be a string")],
)
def test_title_and_description_must_not_be_blank(name: str, value: Any, message: str) -> None:
    assert errors(hourly(**{name: value})) == [FieldError(field=f"terms.{name}", message=message)]


def test_title_and_description_are_required() -> None:
    assert errors(hourly(title=..., description=...)) == [
        FieldError(field="terms.title", message="is required"),
        FieldError(field="terms.description", message="is required"),
    ]


@pytest.mark.parametrize(("name", "limit"), [("title", 200), ("description", 10_000)])
def test_title_and_description_lengths(name: str, limit: int) -> None:
    assert errors(hourly(**{name: "x" * limit})) == []
    assert errors(hourly(**{name: " x "})) == []
    assert errors(hourly(**{name: "x" * (limit + 1)})) == [
        FieldError(field=f"terms.{name}", message=f"must be at most {limit} characters")
    ]


# --- contract_type and currency --------------------------------------------------------------


def test_contract_type_must_be_hourly_or_fixed() -> None:
    assert errors(hourly(contract_type="retainer")) == [
        FieldError(field="terms.contract_type", message="must be one of 'hourly', 'fixed'")
    ]
    assert errors(hourly(contract_type=...)) == [
        FieldError(field="terms.contract_type", message="is required")
    ]


def test_currency_defaults_to_usd() -> None:
    terms, _ = check_terms(hourly(currency=...), **RULES)
    assert terms is not None
    assert terms.currency == "USD"


@pytest.mark.parametrize("code", ["EUR", "JPY", "GBP", "CHF", "INR", "ZWG"])
def test_currency_accepts_iso_4217_codes(code: str) -> None:
    assert errors(hourly(currency=code)) == []


@pytest.mark.parametrize("code", ["usd", "US", "USDD", "ABC", "XXX", "XAU", "HRK", 840, ""])
def test_currency_rejects_other_codes(code: Any) -> None:
    assert fields(hourly(currency=code)) == ["terms.currency"]


# --- hourly ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["0", "0.00", "-5", 45, "45.123"])
def test_hourly_rate_must_be_a_positive_money_string(rate: Any) -> None:
    assert fields(hourly(hourly_rate=rate)) == ["terms.hourly_rate"]


def test_hourly_rate_is_required() -> None:
    assert errors(hourly(hourly_rate=...)) == [
        FieldError(field="terms.hourly_rate", message="is required")
    ]


@pytest.mark.parametrize("limit", [1, 168, None, ...])
def test_weekly_limit_hours_is_optional_1_to_168(limit: Any) -> None:
    assert errors(hourly(weekly_limit_hours=limit)) == []


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (0, "must be at least 1"),
        (169, "must be at most 168"),
        ("30", "must be an integer"),
        (30.5, "must be an integer"),
        (30.0, "must be an integer"),
        (True, "must be an integer"),
    ],
)
def test_weekly_limit_hours_rejects(limit: Any, message: str) -> None:
    assert errors(hourly(weekly_limit_hours=limit)) == [
        FieldError(field="terms.weekly_limit_hours", message=message)
    ]


def test_hourly_terms_have_no_total_amount_or_milestones() -> None:
    found = errors(hourly(total_amount="10.00", milestones=[]))
    assert found == [
        FieldError(field="terms.total_amount", message="is not a field of hourly terms"),
        FieldError(field="terms.milestones", message="is not a field of hourly terms"),
    ]


# --- fixed -----------------------------------------------------------------------------------


def test_fixed_terms_have_no_hourly_rate() -> None:
    assert errors(fixed(hourly_rate="45.00", weekly_limit_hours=3)) == [
        FieldError(field="terms.hourly_rate", message="is not a field of fixed terms"),
        FieldError(field="terms.weekly_limit_hours", message="is not a field of fixed terms"),
    ]


@pytest.mark.parametrize("amount", ["0", "-1", 800, "800.001"])
def test_total_amount_must_be_positive_money(amount: Any) -> None:
    assert fields(fixed(total_amount=amount)) == ["terms.total_amount"]


def test_fixed_needs_total_amount_and_milestones() -> None:
    assert fields(fixed(total_amount=..., milestones=...)) == [
        "terms.total_amount",
        "terms.milestones",
    ]


def milestone(amount: str = "10.00", **extra: Any) -> dict[str, Any]:
    return {"description": "Part", "amount": amount, **extra}


def test_one_to_fifty_milestones() -> None:
    assert errors(fixed(total_amount="500.00", milestones=[milestone()] * 50)) == []
    assert errors(fixed(total_amount="10.00", milestones=[milestone()])) == []
    assert errors(fixed(milestones=[])) == [
        FieldError(field="terms.milestones", message="must have at least 1 item")
    ]
    assert errors(fixed(total_amount="510.00", milestones=[milestone()] * 51)) == [
        FieldError(field="terms.milestones", message="must have at most 50 items")
    ]


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"description": " ", "amount": "10.00"}, "terms.milestones.1.description"),
        ({"amount": "10.00"}, "terms.milestones.1.description"),
        ({"description": "x", "amount": "0"}, "terms.milestones.1.amount"),
        ({"description": "x", "amount": 10}, "terms.milestones.1.amount"),
        ({"description": "x"}, "terms.milestones.1.amount"),
        (
            {"description": "x", "amount": "10.00", "due_date": "soon"},
            "terms.milestones.1.due_date",
        ),
        ({"description": "x", "amount": "10.00", "note": "x"}, "terms.milestones.1.note"),
        ("Part two", "terms.milestones.1"),
    ],
)
def test_milestone_shape(item: Any, field: str) -> None:
    data = fixed(total_amount="20.00", milestones=[milestone(), item])
    assert fields(data) == [field]


def test_milestone_amounts_must_add_up_to_total_amount() -> None:
    assert errors(fixed(total_amount="800.01")) == [
        FieldError(
            field="terms.total_amount",
            message="must equal the sum of the milestone amounts (800.00)",
        )
    ]


@pytest.mark.parametrize(
    ("due", "message"),
    [
        ("2026-11-30", "must not be before start_date (2026-12-01)"),
        ("2027-02-01", "must not be after end_date (2027-01-31)"),
    ],
)
def test_milestone_due_date_within_contract_dates(due: str, message: str) -> None:
    data = fixed(milestones=[milestone("500.00"), milestone("300.00", due_date=due)])
    assert errors(data) == [FieldError(field="terms.milestones.1.due_date", message=message)]
    for edge in ("2026-12-01", "2027-01-31", None):
        data = fixed(milestones=[milestone("500.00"), milestone("300.00", due_date=edge)])
        assert errors(data) == []


# --- dates -----------------------------------------------------------------------------------


def test_start_date_not_before_today() -> None:
    assert errors(hourly(start_date=TODAY.isoformat())) == []
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    assert errors(hourly(start_date=yesterday)) == [
        FieldError(field="terms.start_date", message="must not be before today (2026-11-26, UTC)")
    ]


def test_end_date_not_before_start_date() -> None:
    assert errors(hourly(end_date="2026-12-01")) == []
    assert errors(hourly(end_date="2026-11-30")) == [
        FieldError(field="terms.end_date", message="must not be before start_date (2026-12-01)")
    ]


@pytest.mark.parametrize(("days", "ok"), [(180, True), (181, False)])
def test_contract_lasts_at_most_max_contract_days(days: int, ok: bool) -> None:
    end = (date(2026, 12, 1) + timedelta(days=days)).isoformat()
    expected = (
        []
        if ok
        else [
            FieldError(
                field="terms.end_date",
                message="must be at most 180 days after start_date (on or before 2027-05-30)",
            )
        ]
    )
    assert errors(hourly(end_date=end)) == expected


def test_max_contract_days_is_the_callers_policy() -> None:
    assert fields(hourly(end_date="2026-12-31"), max_contract_days=29) == ["terms.end_date"]
    assert fields(hourly(end_date="2026-12-31"), max_contract_days=30) == []


@pytest.mark.parametrize("name", ["start_date", "end_date"])
def test_dates_are_required_and_well_formed(name: str) -> None:
    assert errors(hourly(**{name: ...})) == [
        FieldError(field=f"terms.{name}", message="is required")
    ]
    assert fields(hourly(**{name: "01/12/2026"})) == [f"terms.{name}"]


# --- optional fields -------------------------------------------------------------------------


def test_optional_fields_may_be_absent_or_null() -> None:
    absent = hourly(talent_cloud_id=..., po_number=..., custom_fields=..., weekly_limit_hours=...)
    assert errors(absent) == []
    nulls = hourly(talent_cloud_id=None, po_number=None, custom_fields=None)
    assert errors(nulls) == []


def test_talent_cloud_id_is_an_id() -> None:
    assert fields(hourly(talent_cloud_id="design team")) == ["terms.talent_cloud_id"]


def test_po_number_at_most_64() -> None:
    assert errors(hourly(po_number="P" * 64)) == []
    assert errors(hourly(po_number="P" * 65)) == [
        FieldError(field="terms.po_number", message="must be at most 64 characters")
    ]


def test_custom_fields_accept_strings_numbers_and_booleans() -> None:
    values = {"s": "x" * 1000, "i": 3, "f": 2.5, "t": True, "f0": False, "e": "", "n": -1}
    terms, found = check_terms(hourly(custom_fields=values), **RULES)
    assert found == []
    assert terms is not None
    assert terms.custom_fields == values
    assert isinstance(terms.custom_fields["t"], bool)
    assert isinstance(terms.custom_fields["i"], int)
    assert not isinstance(terms.custom_fields["i"], bool)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x" * 1001, "must be at most 1000 characters"),
        (None, "must be a string (at most 1000 characters), a number or a boolean"),
        ([1], "must be a string (at most 1000 characters), a number or a boolean"),
        ({"a": 1}, "must be a string (at most 1000 characters), a number or a boolean"),
    ],
)
def test_custom_field_values(value: Any, message: str) -> None:
    assert errors(hourly(custom_fields={"cost_center": value})) == [
        FieldError(field="terms.custom_fields.cost_center", message=message)
    ]


@pytest.mark.parametrize("key", ["", "has space", "k" * 65, "ä", "a/b", "a.b", "$where"])
def test_custom_field_keys(key: str) -> None:
    assert errors(hourly(custom_fields={key: "v"})) == [
        FieldError(
            field=f"terms.custom_fields.{key}".rstrip("."),
            message="key must be 1-64 characters of letters, digits, _ and -",
        )
    ]


def test_custom_field_keys_allowed_characters() -> None:
    assert errors(hourly(custom_fields={"A-z_0-9": 1, "k" * 64: 2})) == []


def test_at_most_50_custom_fields() -> None:
    assert errors(hourly(custom_fields={f"k{i}": i for i in range(50)})) == []
    assert errors(hourly(custom_fields={f"k{i}": i for i in range(51)})) == [
        FieldError(field="terms.custom_fields", message="must have at most 50 items")
    ]


def test_unknown_terms_fields_are_rejected() -> None:
    assert errors(hourly(titel="typo")) == [
        FieldError(field="terms.titel", message="is not a field of hourly terms")
    ]


def test_terms_must_be_an_object() -> None:
    assert errors(["not", "terms"]) == [FieldError(field="terms", message="must be an object")]


# --- all violations together -----------------------------------------------------------------


def test_every_violation_is_reported_at_once() -> None:
    data = fixed(
        start_date="2026-11-01",
        end_date="2026-10-01",
        total_amount="801.00",
        milestones=[
            milestone("500.00", due_date="2026-12-15"),
            milestone("300.00", due_date="2026-10-15"),
        ],
    )
    assert errors(data) == [
        FieldError(field="terms.start_date", message="must not be before today (2026-11-26, UTC)"),
        FieldError(field="terms.end_date", message="must not be before start_date (2026-11-01)"),
        FieldError(
            field="terms.total_amount",
            message="must equal the sum of the milestone amounts (800.00)",
        ),
        FieldError(
            field="terms.milestones.0.due_date", message="must not be after end_date (2026-10-01)"
        ),
        FieldError(
            field="terms.milestones.1.due_date",
            message="must not be before start_date (2026-11-01)",
        ),
    ]


def test_shape_errors_and_rules_are_reported_together() -> None:
    data = fixed(title=" ", currency="usd", start_date="2026-11-01", total_amount="1.00")
    assert fields(data) == [
        "terms.title",
        "terms.currency",
        "terms.start_date",
        "terms.total_amount",
    ]


def test_rules_skip_fields_that_are_malformed() -> None:
    data = fixed(start_date="soon", milestones=[milestone("500.00"), milestone("x")])
    assert fields(data) == ["terms.start_date", "terms.milestones.1.amount"]
    assert raw_terms_violations("nonsense", **RULES) == []


def test_prefix_is_a_parameter() -> None:
    terms = OFFER_TERMS_ADAPTER.validate_python(hourly(end_date="2026-11-30"))
    assert [e.field for e in terms_violations(terms, prefix="changes", **RULES)] == [
        "changes.end_date"
    ]
    assert [e.field for e in terms_violations(terms, prefix="", **RULES)] == ["end_date"]


def test_errors_from_validation_strips_the_union_tag() -> None:
    with pytest.raises(ValidationError) as info:
        OFFER_TERMS_ADAPTER.validate_python(hourly(hourly_rate="0"))
    assert info.value.errors()[0]["loc"] == ("hourly", "hourly_rate")
    assert errors_from_validation(info.value, "terms") == [
        FieldError(field="terms.hourly_rate", message="must be greater than 0")
    ]
    assert errors_from_validation(info.value) == [
        FieldError(field="hourly_rate", message="must be greater than 0")
    ]


# --- properties ------------------------------------------------------------------------------

cents = st.integers(min_value=1, max_value=10_000_000).map(lambda c: Decimal(c) / 100)
# Printable text: control characters have tests of their own (test_hostile_values.py).
printable = st.characters(blacklist_categories=("Cc", "Cs"))
text = st.text(printable, min_size=1, max_size=50).filter(lambda s: s.strip() != "")
start_dates = st.dates(min_value=TODAY, max_value=TODAY + timedelta(days=MAX_START_AHEAD_DAYS))


@st.composite
def hourly_terms(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(start_dates)
    end = start + timedelta(days=draw(st.integers(0, 180)))
    data: dict[str, Any] = {
        "title": draw(text),
        "description": draw(text),
        "contract_type": "hourly",
        "currency": draw(st.sampled_from(["USD", "EUR", "GBP", "JPY"])),
        "hourly_rate": f"{draw(cents):.2f}",
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
    }
    if draw(st.booleans()):
        data["weekly_limit_hours"] = draw(st.integers(1, 168))
    if draw(st.booleans()):
        data["custom_fields"] = draw(
            st.dictionaries(
                st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
                st.one_of(
                    st.text(printable, max_size=1000),
                    st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans(),
                ),
                max_size=50,
            )
        )
    return data


@st.composite
def fixed_terms(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(start_dates)
    end = start + timedelta(days=draw(st.integers(0, 180)))
    amounts = draw(st.lists(cents, min_size=1, max_size=50))
    dues = st.none() | st.dates(min_value=start, max_value=end).map(date.isoformat)
    return {
        "title": draw(text),
        "description": draw(text),
        "contract_type": "fixed",
        "total_amount": f"{sum(amounts, Decimal(0)):.2f}",
        "milestones": [
            {"description": draw(text), "amount": f"{a:.2f}", "due_date": draw(dues)}
            for a in amounts
        ],
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
    }


@settings(deadline=None)
@given(hourly_terms())
def test_generated_valid_hourly_terms_pass(data: dict[str, Any]) -> None:
    terms, found = check_terms(data, **RULES)
    assert found == []
    assert terms is not None
    assert OFFER_TERMS_ADAPTER.validate_json(OFFER_TERMS_ADAPTER.dump_json(terms)) == terms


@settings(deadline=None)
@given(fixed_terms())
def test_generated_valid_fixed_terms_pass(data: dict[str, Any]) -> None:
    terms, found = check_terms(data, **RULES)
    assert found == []
    assert terms is not None
    assert OFFER_TERMS_ADAPTER.validate_json(OFFER_TERMS_ADAPTER.dump_json(terms)) == terms


@settings(deadline=None)
@given(fixed_terms(), st.sampled_from([Decimal("0.01"), Decimal("-0.01")]))
def test_milestone_sum_off_by_a_cent_fails_on_total_amount(
    data: dict[str, Any], delta: Decimal
) -> None:
    total = Decimal(data["total_amount"]) + delta
    if total <= 0:
        return
    data["total_amount"] = f"{total:.2f}"
    assert fields(data) == ["terms.total_amount"]


# --- negotiation helpers ---------------------------------------------------------------------


def current() -> HourlyTerms | FixedTerms:
    return OFFER_TERMS_ADAPTER.validate_python(hourly())


def test_terms_changes_accept_a_subset_and_serialise_only_it() -> None:
    changes = TermsChanges.model_validate_json(b'{"hourly_rate": "50", "po_number": null}')
    assert changes.model_fields_set == {"hourly_rate", "po_number"}
    assert changes.model_dump(mode="json") == {"hourly_rate": "50.00", "po_number": None}
    assert TermsChanges.model_validate_json(changes.model_dump_json()) == changes


def test_terms_changes_rules() -> None:
    def change_errors(data: Any) -> list[FieldError]:
        with pytest.raises(ValidationError) as info:
            TermsChanges.model_validate(data)
        return errors_from_validation(info.value, "changes")

    assert change_errors({}) == [
        FieldError(field="changes", message="must change at least one terms field")
    ]
    assert change_errors({"title": None, "rate": "1.00", "hourly_rate": 5}) == [
        FieldError(field="changes.title", message="cannot be removed (null)"),
        FieldError(
            field="changes.hourly_rate",
            message='must be a decimal string like "45.00", not a JSON number',
        ),
        FieldError(field="changes.rate", message="is not a known field"),
    ]


def test_apply_changes_merges_and_removes() -> None:
    changes = TermsChanges(hourly_rate=Decimal("50"), po_number=None)
    merged = apply_changes(current(), changes)
    assert merged["hourly_rate"] == "50.00"
    assert "po_number" not in merged
    assert merged["title"] == "Checkout redesign"


def test_apply_changes_switching_contract_type_drops_old_fields() -> None:
    changes = TermsChanges.model_validate(
        {
            "contract_type": "fixed",
            "total_amount": "100.00",
            "milestones": [{"description": "All", "amount": "100.00"}],
        }
    )
    terms, found = proposed_terms(current(), changes, **RULES)
    assert found == []
    assert isinstance(terms, FixedTerms)
    merged = apply_changes(current(), changes)
    assert "hourly_rate" not in merged
    assert "weekly_limit_hours" not in merged


def test_proposed_terms_are_checked_against_every_rule() -> None:
    changes = TermsChanges.model_validate({"end_date": "2026-11-01", "total_amount": "5.00"})
    terms, found = proposed_terms(current(), changes, **RULES)
    assert terms is None
    assert found == [
        FieldError(field="changes.total_amount", message="is not a field of hourly terms"),
        FieldError(field="changes.end_date", message="must not be before start_date (2026-12-01)"),
    ]


def test_terms_differences_lists_changed_fields_with_json_values() -> None:
    proposed = OFFER_TERMS_ADAPTER.validate_python(
        hourly(hourly_rate="50", po_number=None, custom_fields={"billable": False})
    )
    assert terms_differences(current(), proposed) == [
        TermsDifference(field="po_number", current="PO-2026-0042", proposed=None),
        TermsDifference(
            field="custom_fields",
            current={"cost_center": "R&D-12", "billable": True},
            proposed={"billable": False},
        ),
        TermsDifference(field="hourly_rate", current="45.00", proposed="50.00"),
    ]
    assert terms_differences(current(), current()) == []


def test_terms_differences_across_contract_types() -> None:
    proposed = OFFER_TERMS_ADAPTER.validate_python(fixed())
    found = {d.field: (d.current, d.proposed) for d in terms_differences(current(), proposed)}
    assert found["contract_type"] == ("hourly", "fixed")
    assert found["hourly_rate"] == ("45.00", None)
    assert found["total_amount"] == (None, "800.00")
