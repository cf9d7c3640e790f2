"""Review a run: DuckDB views (dashboard.duckdb), a self-contained HTML report, run comparison, SQL queries."""
from curation.dashboard.build import build_dashboard

__all__ = ["build_dashboard"]
