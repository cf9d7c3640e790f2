"""Review a run: DuckDB views (dashboard.duckdb), a self-contained HTML report, run comparison, SQL queries."""
from curation.dashboard.build import build_dashboard
from curation.dashboard.compare import compare_runs, compare_runs_dict
from curation.dashboard.query import query

__all__ = ["build_dashboard", "compare_runs", "compare_runs_dict", "query"]
