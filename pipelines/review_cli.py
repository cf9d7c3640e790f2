"""Review verbs: `dashboard`, `compare`, `query` (DuckDB over a run folder)."""
import sys


def _dashboard(args) -> int:
    from curation.dashboard import build_dashboard
    from pipelines.cli import CliError

    try:
        db, html = build_dashboard(args.out)
    except FileNotFoundError as e:
        raise CliError(f"not a run folder: {e}") from None
    print(f"wrote {db}\nwrote {html}")
    print(f'try: vidcurate query {args.out} "select * from funnel"   (or the duckdb CLI on {db})')
    return 0


def _compare(args) -> int:
    from curation.dashboard import compare_runs

    print(compare_runs(args.run_a, args.run_b))
    return 0


def _query(args) -> int:
    import duckdb

    from curation.dashboard import query
    from pipelines.cli import CliError

    try:
        print(query(args.out, args.sql))
    except FileNotFoundError as e:
        raise CliError(str(e)) from None
    except duckdb.Error as e:
        raise CliError(f"query failed: {' '.join(str(e).split())}", code=1) from None
    return 0


def add_parsers(sub) -> None:
    d = sub.add_parser("dashboard", help="build OUT/dashboard.duckdb and OUT/dashboard.html for review",
                       description="Views over the run's tables (funnel, score_quantiles, score_histograms, by_source, "
                                   "by_resolution, dup_groups, error_summary, runs) and a self-contained HTML report.")
    d.add_argument("out", metavar="OUT", help="a run folder written by `vidcurate run`")
    d.set_defaults(func=_dashboard)

    c = sub.add_parser("compare", help="what changed between two runs: counts, config, scores, flipped clips")
    c.add_argument("run_a", metavar="RUN_A")
    c.add_argument("run_b", metavar="RUN_B")
    c.set_defaults(func=_compare)

    q = sub.add_parser("query", help='run SQL against OUT/dashboard.duckdb, e.g. "select * from funnel"')
    q.add_argument("out", metavar="OUT")
    q.add_argument("sql", metavar="SQL")
    q.set_defaults(func=_query)


if __name__ == "__main__":
    sys.exit("use: vidcurate dashboard|compare|query")
