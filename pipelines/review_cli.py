"""Review verbs: `dashboard`, `compare`, `query` (DuckDB over a run folder).

Each takes the run folder's storage options (`--config FILE`, whose output or
input storage_options are used, and/or `--storage-option KEY=VALUE`) and keeps
the folder's URI scheme. A folder that is missing or holds no run gives one line
and exit 2.
"""
import sys


def _fail(message: str):
    from pipelines.cli import CliError

    return CliError(message)


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]


def storage_options(args) -> dict:
    """fsspec options from --config (output, else input storage_options) and --storage-option KEY=VALUE."""
    import yaml

    options: dict = {}
    if getattr(args, "config", None):
        from pipelines.config import ConfigError, load_config

        try:
            cfg = load_config(args.config)
        except ConfigError as e:
            raise _fail(str(e)) from None
        options.update(cfg.input.storage_options)
        options.update(cfg.output.storage_options)
    for item in getattr(args, "storage_option", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--storage-option wants KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(value) if value else ""
    return options


def require_run(uri: str, options: dict) -> None:
    """Fail with one line unless `uri` is a reachable run folder."""
    from curation.dashboard.run_folder import RunFolder

    try:
        ok = RunFolder(uri, options).is_run()
    except Exception as e:  # unknown protocol, missing credentials, unreachable store
        raise _fail(f"cannot reach {uri}: {_one_line(e)}") from None
    if not ok:
        raise _fail(f"not a run folder: {uri} (no runs/, videos/, clips/ or errors/ inside; "
                    "write one with `vidcurate run INPUT OUT`)")


def duckdb_limits(args) -> dict:
    """DuckDB memory_limit and temp_directory from --memory-limit and --temp-dir (defaults: see database.py)."""
    from curation.dashboard.database import duckdb_limits

    try:
        return duckdb_limits(args.memory_limit, args.temp_dir)
    except ValueError as e:
        raise _fail(f"--memory-limit: {e}") from None


def _dashboard(args) -> int:
    from curation.dashboard import build_dashboard

    options = storage_options(args)
    limits = duckdb_limits(args)
    require_run(args.out, options)
    try:
        db, html = build_dashboard(args.out, options, limits)
    except FileNotFoundError as e:
        raise _fail(f"not a run folder: {e}") from None
    print(f"wrote {db}\nwrote {html}")
    print(f'try: vidcurate query {args.out} "select * from funnel"   (or the duckdb CLI on a local copy of {db})')
    return 0


def _compare(args) -> int:
    from curation.dashboard import compare_runs

    options = storage_options(args)
    for run in (args.run_a, args.run_b):
        require_run(run, options)
    print(compare_runs(args.run_a, args.run_b, options))
    return 0


def _query(args) -> int:
    import duckdb

    from curation.dashboard.query import QueryRefused, query

    options = storage_options(args)
    limits = duckdb_limits(args)
    require_run(args.out, options)
    try:
        print(query(args.out, args.sql, storage_options=options, limits=limits))
    except FileNotFoundError as e:
        raise _fail(str(e)) from None
    except QueryRefused as e:
        raise _fail(f"query refused: it reads the run's tables only (no files, network, extensions or "
                    f"settings): {e}") from None
    except duckdb.Error as e:
        raise _fail(f"query failed: {' '.join(str(e).split())}") from None
    return 0


def _storage_arguments(p) -> None:
    p.add_argument("--config", metavar="FILE", help="pipeline YAML whose output (else input) storage_options reach the folder")
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option for the folder, e.g. endpoint_url=http://... (repeatable)")


def _duckdb_arguments(p) -> None:
    p.add_argument("--memory-limit", metavar="SIZE",
                   help="DuckDB memory limit: a size (4GB, 512MiB) or a share of this machine's RAM (default 25%%); "
                        "past it DuckDB spills to --temp-dir")
    p.add_argument("--temp-dir", metavar="DIR", help="where DuckDB spills (default: vidcurate-duckdb in the system temp folder)")


def add_parsers(sub) -> None:
    d = sub.add_parser("dashboard", help="build OUT/dashboard.duckdb and OUT/dashboard.html for review",
                       description="Views over the run's tables (funnel, score_quantiles, score_histograms, by_source, "
                                   "by_resolution, dup_groups, error_summary, runs, evaluation) and a self-contained "
                                   "HTML report.")
    d.add_argument("out", metavar="OUT", help="a run folder written by `vidcurate run` (local path or URI)")
    _storage_arguments(d)
    _duckdb_arguments(d)
    d.set_defaults(func=_dashboard)

    c = sub.add_parser("compare", help="what changed between two runs: counts, config, scores, flipped clips")
    c.add_argument("run_a", metavar="RUN_A")
    c.add_argument("run_b", metavar="RUN_B")
    _storage_arguments(c)
    c.set_defaults(func=_compare)

    q = sub.add_parser("query", help='run SQL against OUT/dashboard.duckdb, e.g. "select * from funnel"',
                       description="Read-only SQL over the dashboard database. The statement cannot read or write "
                                   "files, reach the network, install extensions or change settings.")
    q.add_argument("out", metavar="OUT")
    q.add_argument("sql", metavar="SQL")
    _storage_arguments(q)
    _duckdb_arguments(q)
    q.set_defaults(func=_query)


if __name__ == "__main__":
    sys.exit("use: vidcurate dashboard|compare|query")
