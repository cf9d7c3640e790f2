"""Compare two runs: counts, config and threshold changes, score shifts, clips that flipped."""
import json

import duckdb

from curation.dashboard.run_folder import HEAVY_COLUMNS, SCORE_COLUMNS, RunFolder
from curation.dashboard.text_table import format_table

MAX_FLIPPED_LISTED = 50  # per direction, in the text; the dict has them all


def flatten_config(value, prefix: str = "") -> dict[str, object]:
    """Nested config as {dotted.key: leaf}; lists of rules are keyed by their reason."""
    out: dict[str, object] = {}
    if isinstance(value, dict):
        for k in sorted(value):
            out.update(flatten_config(value[k], f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value and all(isinstance(v, dict) and "reason" in v for v in value):
        for v in value:  # filter rules: the reason names the rule, the position may change
            out.update(flatten_config({k: x for k, x in v.items() if k != "reason"}, f"{prefix}[{v['reason']}]"))
    else:
        out[prefix] = value
    return out


def _config_diff(a: dict, b: dict) -> list[dict]:
    fa, fb = flatten_config(a), flatten_config(b)
    missing = object()
    diff = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            diff.append({"key": key, "a": None if va is missing else va, "b": None if vb is missing else vb,
                         "change": "added" if va is missing else "removed" if vb is missing else "changed"})
    return diff


def _load(con: duckdb.DuckDBPyConnection, name: str, folder: RunFolder) -> None:
    clips = folder.table("clips", drop=HEAVY_COLUMNS)
    con.register(f"_{name}", clips)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
    con.unregister(f"_{name}")
    errors = folder.table("errors")
    con.register(f"_{name}_err", errors)
    con.execute(f"CREATE TABLE {name}_errors AS SELECT * FROM _{name}_err")
    con.unregister(f"_{name}_err")


def _counts(con, name: str) -> dict:
    row = con.execute(
        f"""SELECT (SELECT count(DISTINCT uri) FROM {name}) AS videos_with_clips, count(*) AS clips,
                   count(*) FILTER (WHERE kept) AS kept_clips,
                   coalesce(sum(duration_s), 0) / 3600 AS clip_hours,
                   coalesce(sum(duration_s) FILTER (WHERE kept), 0) / 3600 AS kept_hours,
                   (SELECT count(*) FROM {name}_errors) AS errors
            FROM {name}"""
    ).fetchone()
    return dict(zip(("videos_with_clips", "clips", "kept_clips", "clip_hours", "kept_hours", "errors"), row))


def _score_shifts(con) -> list[dict]:
    parts = []
    for run in ("a", "b"):
        for col in SCORE_COLUMNS:
            parts.append(f"SELECT '{run}' AS run, '{col}' AS score, CAST(\"{col}\" AS DOUBLE) AS v FROM {run}")
    sql = f"""
        WITH long AS ({' UNION ALL '.join(parts)}),
        q AS (SELECT run, score, count(v) AS n, quantile_cont(v, 0.05) AS p05,
                     quantile_cont(v, 0.5) AS p50, quantile_cont(v, 0.95) AS p95
              FROM long WHERE v IS NULL OR isfinite(v) GROUP BY run, score)
        SELECT a.score, a.n AS a_measured, b.n AS b_measured,
               a.p05 AS a_p05, b.p05 AS b_p05, a.p50 AS a_p50, b.p50 AS b_p50, a.p95 AS a_p95, b.p95 AS b_p95,
               b.p50 - a.p50 AS delta_p50
        FROM q a JOIN q b ON a.score = b.score AND a.run = 'a' AND b.run = 'b'
        WHERE a.n > 0 OR b.n > 0
    """
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    order = {c: i for i, c in enumerate(SCORE_COLUMNS)}
    return sorted((dict(zip(names, r)) for r in cur.fetchall()), key=lambda r: order[r["score"]])


def _flipped(con) -> dict:
    cur = con.execute(
        """SELECT a.clip_id, a.uri, a.clip_index, a.start_s, a.end_s, a.kept AS a_kept, b.kept AS b_kept,
                  a.drop_reasons AS a_reasons, b.drop_reasons AS b_reasons
           FROM a JOIN b USING (clip_id) WHERE a.kept <> b.kept ORDER BY a.uri, a.clip_index, a.clip_id"""
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    only_a = con.execute("SELECT count(*) FROM a ANTI JOIN b USING (clip_id)").fetchone()[0]
    only_b = con.execute("SELECT count(*) FROM b ANTI JOIN a USING (clip_id)").fetchone()[0]
    return {
        "kept_to_dropped": [r for r in rows if r["a_kept"]],
        "dropped_to_kept": [r for r in rows if r["b_kept"]],
        "only_in_a": only_a,
        "only_in_b": only_b,
    }


def compare_runs_dict(run_a: str, run_b: str, storage_options: dict | None = None) -> dict:
    """Structured comparison of two run folders (A = before, B = after)."""
    fa, fb = RunFolder(run_a, storage_options or {}), RunFolder(run_b, storage_options or {})
    ra, rb = fa.latest_run(), fb.latest_run()
    con = duckdb.connect()
    try:
        _load(con, "a", fa)
        _load(con, "b", fb)
        config_diff = _config_diff(ra.config if ra else {}, rb.config if rb else {})
        return {
            "a": {"folder": run_a, "run_id": ra and ra.run_id, "config_hash": ra and ra.config_hash},
            "b": {"folder": run_b, "run_id": rb and rb.run_id, "config_hash": rb and rb.config_hash},
            "counts": {"a": _counts(con, "a"), "b": _counts(con, "b")},
            "record_counts": {"a": ra.counts if ra else {}, "b": rb.counts if rb else {}},
            "config_diff": config_diff,
            "threshold_changes": [d for d in config_diff if d["key"].startswith("filters[")],
            "score_shifts": _score_shifts(con),
            "flipped": _flipped(con),
        }
    finally:
        con.close()


def _short(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def compare_runs(run_a: str, run_b: str, storage_options: dict | None = None) -> str:
    """compare_runs_dict as plain text for the terminal."""
    d = compare_runs_dict(run_a, run_b, storage_options)
    out = [f"A: {d['a']['folder']}  run {d['a']['run_id']}  config {d['a']['config_hash']}",
           f"B: {d['b']['folder']}  run {d['b']['run_id']}  config {d['b']['config_hash']}", "", "Counts"]
    ca, cb = d["counts"]["a"], d["counts"]["b"]
    out.append(format_table(["", "A", "B", "B - A"], [[k, ca[k], cb[k], cb[k] - ca[k]] for k in ca]))
    out += ["", "Config differences" if d["config_diff"] else "Config differences: none"]
    if d["config_diff"]:
        out.append(format_table(["key", "A", "B", "change"],
                                [[x["key"], _short(x["a"]), _short(x["b"]), x["change"]] for x in d["config_diff"]]))
    out += ["", "Score distributions (quantiles over all clips)"]
    out.append(format_table(
        ["score", "n A", "n B", "p5 A", "p5 B", "p50 A", "p50 B", "p95 A", "p95 B", "Δp50"],
        [[s["score"], s["a_measured"], s["b_measured"], s["a_p05"], s["b_p05"], s["a_p50"], s["b_p50"],
          s["a_p95"], s["b_p95"], s["delta_p50"]] for s in d["score_shifts"]],
    ))
    f = d["flipped"]
    out += ["", f"Flipped clips: {len(f['kept_to_dropped'])} kept → dropped, "
                f"{len(f['dropped_to_kept'])} dropped → kept; {f['only_in_a']} clips only in A, "
                f"{f['only_in_b']} only in B"]
    for title, rows, reasons in (("kept in A, dropped in B", f["kept_to_dropped"], "b_reasons"),
                                 ("dropped in A, kept in B", f["dropped_to_kept"], "a_reasons")):
        if rows:
            out += ["", title]
            out.append(format_table(
                ["clip_id", "uri", "clip", "start_s", "reasons"],
                [[r["clip_id"], r["uri"], r["clip_index"], r["start_s"], ", ".join(r[reasons])]
                 for r in rows[:MAX_FLIPPED_LISTED]],
            ))
            if len(rows) > MAX_FLIPPED_LISTED:
                out.append(f"... and {len(rows) - MAX_FLIPPED_LISTED} more (compare_runs_dict has them all)")
    return "\n".join(out)
