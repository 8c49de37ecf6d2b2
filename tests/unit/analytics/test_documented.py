"""The warehouse's columns are documented once (analytics.warehouse) and that text is what
DuckDB's catalogue and the README say; analytics/ stands apart from the services."""

from __future__ import annotations

import ast
from pathlib import Path

from analytics import warehouse

REPO = Path(__file__).resolve().parents[3]


def test_every_column_is_described_in_duckdb_and_typed_as_documented() -> None:
    connection = warehouse.connect(":memory:")
    found = connection.execute(
        "SELECT table_name, column_name, data_type, comment FROM duckdb_columns()"
    ).fetchall()
    catalogue = {(table, column): (kind, comment) for table, column, kind, comment in found}
    documented = {table: columns for table, (_, columns) in warehouse.TABLES.items()}
    documented["offer_funnel"] = warehouse.FUNNEL_COLUMNS
    for table, columns in documented.items():
        assert [c for t, c in catalogue if t == table] == [name for name, _, _ in columns]
        for name, kind, what in columns:
            assert catalogue[(table, name)] == (kind.replace(", ", ","), what), (table, name)


def test_the_readme_shows_the_columns_as_documented() -> None:
    assert warehouse.markdown() in (REPO / "README.md").read_text(encoding="utf-8")


def test_analytics_imports_nothing_from_the_services() -> None:
    for path in (REPO / "analytics").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                assert name.split(".")[0] not in {"services", "tests", "bench"}, (path, name)
