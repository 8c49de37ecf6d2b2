"""The funnel for people: a table on the terminal, or one HTML page of charts (plotly, its
JavaScript inlined, so the page opens without a network)."""

from __future__ import annotations

import html
from datetime import date
from pathlib import Path
from typing import Any, Final

import duckdb
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .warehouse import FUNNEL_COLUMNS

ENDINGS: Final = ("accepted", "declined", "withdrawn", "expired", "pending")
COLOURS: Final = {
    "accepted": "#2e7d32",
    "declined": "#c62828",
    "withdrawn": "#6d4c41",
    "expired": "#9e9e9e",
    "pending": "#1565c0",
}


def funnel(connection: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [name for name, _, _ in FUNNEL_COLUMNS]
    rows = connection.execute(f"SELECT {', '.join(names)} FROM offer_funnel").fetchall()
    return [dict(zip(names, row, strict=True)) for row in rows]


def _cell(value: Any, name: str) -> str:
    if value is None:
        return "-"
    if name == "acceptance_rate" or name == "median_rate_change":
        return f"{value:+.1%}" if name == "median_rate_change" else f"{value:.0%}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


HEADINGS: Final = {
    "week": "week",
    "contract_type": "type",
    "extended": "extended",
    "negotiated": "negotiated",
    "changed": "changed",
    "accepted": "accepted",
    "declined": "declined",
    "withdrawn": "withdrawn",
    "expired": "expired",
    "pending": "pending",
    "acceptance_rate": "accept %",
    "median_hours_to_accept": "h to accept",
    "median_versions": "versions",
    "median_rate_change": "rate change",
}


def table(rows: list[dict[str, Any]]) -> str:
    """The funnel as a plain text table, one line per week and contract type."""
    if not rows:
        return "no offers in the warehouse yet: run `python -m analytics --until-caught-up`"
    names = list(HEADINGS)
    cells = [[HEADINGS[n] for n in names]] + [[_cell(r[n], n) for n in names] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(names))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _by_week(rows: list[dict[str, Any]]) -> dict[date, dict[str, Any]]:
    """The funnel summed over contract types, week by week."""
    weeks: dict[date, dict[str, Any]] = {}
    for row in rows:
        into = weeks.setdefault(row["week"], {name: 0 for name in ("extended", *ENDINGS)})
        for name in ("extended", *ENDINGS):
            into[name] += row[name]
    return dict(sorted(weeks.items()))


def figures(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, go.Figure]]:
    rows = funnel(connection)
    weeks = _by_week(rows)
    over_time = make_subplots(specs=[[{"secondary_y": True}]])
    for ending in ENDINGS:
        over_time.add_bar(
            x=list(weeks),
            y=[w[ending] for w in weeks.values()],
            name=ending,
            marker_color=COLOURS[ending],
        )
    over_time.add_scatter(
        x=list(weeks),
        y=[w["accepted"] / w["extended"] for w in weeks.values()],
        name="acceptance rate",
        mode="lines+markers",
        line={"color": "black"},
        secondary_y=True,
    )
    over_time.update_layout(barmode="stack", xaxis_title="week extended")
    over_time.update_yaxes(title_text="offers", secondary_y=False)
    over_time.update_yaxes(title_text="acceptance rate", tickformat=".0%", secondary_y=True)

    totals = connection.execute(
        "SELECT count(*), count(*) FILTER (WHERE messages + proposals > 0), "
        "count(*) FILTER (WHERE versions > 1), count(*) FILTER (WHERE status = 'accepted') "
        "FROM offers"
    ).fetchone()
    stages = go.Figure(
        go.Funnel(
            y=["extended", "negotiated", "changed", "accepted"],
            x=list(totals or (0, 0, 0, 0)),
            texttemplate="%{value:,}<br>%{percentInitial:.0%}",
            marker={"color": ["#1565c0", "#5e35b1", "#8e24aa", "#2e7d32"]},
        )
    )

    to_accept = go.Figure()
    rate_change = go.Figure()
    for kind in ("hourly", "fixed"):
        hours, changes = _accepted(connection, kind)
        colour = {"hourly": "#1565c0", "fixed": "#ef6c00"}[kind]
        style = {"name": kind, "opacity": 0.6, "nbinsx": 40, "marker_color": colour}
        to_accept.add_histogram(x=hours, **style)
        rate_change.add_histogram(x=changes, **style)
    to_accept.update_layout(barmode="overlay", xaxis_title="hours from extended to accepted")
    rate_change.update_layout(
        barmode="overlay", xaxis_title="accepted price against the first offer"
    )
    rate_change.update_xaxes(tickformat="+.0%")
    for figure in (over_time, stages, to_accept, rate_change):
        figure.update_layout(template="plotly_white", height=380, margin={"t": 30, "b": 40})
    return [
        ("Offers by week extended, and how they ended", over_time),
        ("The funnel, all weeks", stages),
        ("Time to accept", to_accept),
        ("Rate changes, first offer to accepted (of the offers whose price moved)", rate_change),
    ]


def _accepted(connection: duckdb.DuckDBPyConnection, kind: str) -> tuple[list[float], list[float]]:
    rows = connection.execute(
        "SELECT epoch(ended_at - extended_at) / 3600, amount_change FROM offers "
        "WHERE status = 'accepted' AND contract_type = ?",
        [kind],
    ).fetchall()
    # Most offers are accepted at their first price: the chart is of those that moved.
    return [r[0] for r in rows], [r[1] for r in rows if r[1]]


def html_page(connection: duckdb.DuckDBPyConnection) -> str:
    """One self-contained page: plotly's JavaScript once, inline, then every chart."""
    rows = funnel(connection)
    parts = []
    for index, (title, figure) in enumerate(figures(connection)):
        chart = figure.to_html(full_html=False, include_plotlyjs=index == 0)
        parts.append(f"<section><h2>{html.escape(title)}</h2>{chart}</section>")
    return PAGE.format(
        table=html.escape(table(rows)),
        charts="\n".join(parts),
    )


PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Offer funnel</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ font-size: 1.1em; margin: 1.5em 0 0; }}
pre {{ font-size: 12px; background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style></head>
<body>
<h1>Offer funnel</h1>
<p>From the analytics warehouse (DuckDB), folded from offers.events, negotiations.events and
contracts.events. Weeks are those the offers were extended in (UTC).</p>
{charts}
<section><h2>By week and contract type</h2><pre>{table}</pre></section>
</body></html>
"""


def write_html(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(connection), encoding="utf-8")
