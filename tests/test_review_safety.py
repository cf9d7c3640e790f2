"""Review verbs are safe and honest: a sandboxed query, one-line errors, storage options, merged filter rules."""
import os
from pathlib import Path
from types import SimpleNamespace

import duckdb
import fsspec
import pytest

from curation.dashboard import build_dashboard, query
from curation.dashboard.query import QueryRefused
from pipelines.cli import main
from pipelines.config import ConfigError, load_config
from schemas import RunRecord, clips_schema, errors_schema, table_from_rows, videos_schema, write_table

def make_run(out: str, storage_options: dict | None = None) -> str:
    """A two-clip run folder with two error rows at any fsspec URI (no videos needed)."""
    uri = "file:///nowhere/in/a.mp4"
    video = dict(video_id="v1", uri=uri, relpath="a.mp4", content_hash="h", file_size=10, width=64, height=36,
                 fps=25.0, num_frames=50, duration_s=2.0, num_clips=2)
    clips = [dict(clip_id=f"c{k}", video_id="v1", uri=uri, clip_index=k, start_frame=25 * k, end_frame=25 * k + 25,
                  num_frames=25, start_s=float(k), end_s=k + 1.0, duration_s=1.0, fps=25.0, width=64, height=36,
                  split_reason="cut", sharpness=1.0 + 9 * k, drop_reasons=[] if k else ["blurry"], kept=bool(k))
             for k in range(2)]
    # error_summary must pair each message with its own file: min(message) and min(uri) come from different rows
    errors = [dict(uri="b_file.mp4", stage="probe", error_type="InvalidDataError", message="a message of b",
                   run_id="r1"),
              dict(uri="a_file.mp4", stage="probe", error_type="InvalidDataError", message="z message of a",
                   run_id="r1")]
    o = storage_options or {}
    write_table(table_from_rows([video], videos_schema, "videos"), "videos", f"{out}/videos/p.parquet", o)
    write_table(table_from_rows(clips, clips_schema, "clips"), "clips", f"{out}/clips/p.parquet", o)
    write_table(table_from_rows(clips[1:], clips_schema, "curated"), "curated", f"{out}/curated/p.parquet", o)
    write_table(table_from_rows(errors, errors_schema, "errors"), "errors", f"{out}/errors/p.parquet", o)
    record = RunRecord(run_id="r1", input_uri="file:///nowhere/in", output_uri=out, started_at="2026-01-01T00:00:00Z",
                       config={"filters": [{"column": "sharpness", "min": 2.5, "max": None, "reason": "blurry"}]},
                       config_hash="x", versions={}, status="succeeded")
    fs, path = fsspec.core.url_to_fs(out, **o)
    fs.makedirs(f"{path}/runs", exist_ok=True)
    fs.pipe(f"{path}/runs/r1.json", record.to_json().encode())
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("review") / "OUT")
    make_run(out)
    build_dashboard(out)
    return out


@pytest.fixture
def cli(capsys):
    """`vidcurate ARGS...` in this process (a fresh interpreter per call costs ~20 s here): code, stdout, stderr."""

    def run(*args, cwd=None):
        before = os.getcwd()
        if cwd:
            os.chdir(cwd)
        try:
            code = main([str(a) for a in args])
        finally:
            os.chdir(before)
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run


def _one_line_exit_2(done) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


# --------------------------------------------------------------------------- query sandbox


@pytest.mark.parametrize("sql", [
    "copy (select * from clips) to 'leak.csv'",
    "select * from read_text('/etc/hostname')",
    "select * from read_csv('/etc/passwd')",
    "install httpfs",
    "load httpfs",
    "attach '/tmp/other.duckdb'",
    "set enable_external_access = true",
    "create table t as select 1",
])
def test_query_cannot_leave_the_run(run, tmp_path, sql, cli):
    with pytest.raises(QueryRefused):
        query(run, sql)
    line = _one_line_exit_2(cli("query", run, sql, cwd=tmp_path))
    assert "query refused" in line
    assert not (tmp_path / "leak.csv").exists() and not Path("leak.csv").exists()


def test_query_still_reads_the_views(run, cli):
    assert "InvalidDataError" in query(run, "select * from error_summary")
    assert "(0 rows)" in query(run, "select * from evaluation")  # no truth file next to this run
    done = cli("query", run, "select count(*) AS n from clips")
    assert done.returncode == 0 and "2" in done.stdout


def test_bad_sql_is_one_line(run, cli):
    assert "query failed" in _one_line_exit_2(cli("query", run, "selec nothing"))


def test_error_summary_pairs_message_with_its_file(run):
    con = duckdb.connect(str(Path(run) / "dashboard.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT example_uri, example_message FROM error_summary").fetchall()
    finally:
        con.close()
    assert rows == [("a_file.mp4", "z message of a")]


# --------------------------------------------------------------------------- review verbs


def test_missing_or_non_run_folders_give_one_line(run, tmp_path, cli):
    missing = str(tmp_path / "missing")
    assert "not a run folder" in _one_line_exit_2(cli("compare", missing, run))
    assert "not a run folder" in _one_line_exit_2(cli("compare", run, missing))
    assert "not a run folder" in _one_line_exit_2(cli("query", missing, "select 1"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "not a run folder" in _one_line_exit_2(cli("dashboard", str(a_file)))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not a run folder" in _one_line_exit_2(cli("dashboard", str(empty)))
    _one_line_exit_2(cli("dashboard", "s3://no-such-bucket-vidcurate/out", "--storage-option", "anon=true",
                          "--storage-option", "endpoint_url=http://127.0.0.1:9"))
    assert "KEY=VALUE" in _one_line_exit_2(cli("query", run, "select 1", "--storage-option", "novalue"))


def test_remote_folder_keeps_its_scheme_and_takes_options():
    """memory:// stands for s3:// here: the URIs printed and returned keep the scheme; query reads it."""
    out = make_run("memory://review-remote/OUT")
    db, html = build_dashboard(out, {})
    assert db == "memory://review-remote/OUT/dashboard.duckdb" and str(html).startswith("memory://")
    assert "InvalidDataError" in query(out, "select error_type from error_summary")
    with pytest.raises(QueryRefused):
        query(out, "copy (select 1) to 'x.csv'")
    fsspec.filesystem("memory").rm("/review-remote", recursive=True)


def test_storage_options_reach_the_folder(tmp_path):
    """Options are passed to fsspec: a dir:// folder with a `path` option resolves only with the option."""
    root = tmp_path / "bucket"
    make_run(str(root / "OUT"))
    options = {"path": str(root), "fs": fsspec.filesystem("file")}
    db, _ = build_dashboard("dir://OUT", options)
    assert db == "dir://OUT/dashboard.duckdb" and (root / "OUT" / "dashboard.duckdb").exists()
    assert "InvalidDataError" in query("dir://OUT", "select error_type from error_summary", storage_options=options)


def test_compare_takes_two_real_runs(run, tmp_path, cli):
    other = make_run(str(tmp_path / "B"))
    done = cli("compare", run, other)
    assert done.returncode == 0 and "Counts" in done.stdout


# --------------------------------------------------------------------------- honest filter configs


def _cfg(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return load_config(p)


def _rules(cfg) -> dict:
    return {r.reason: (r.column, r.min, r.max) for r in cfg.filters}


def test_user_rule_replaces_only_its_reason(tmp_path):
    default = _rules(load_config())
    cfg = _cfg(tmp_path, "filters:\n  - {column: sharpness, min: 5.0, reason: blurry}\n"
                         "  - {column: content_frac, min: 0.8, reason: wide_bars}\n")
    rules = _rules(cfg)
    assert rules["blurry"] == ("sharpness", 5.0, None)
    assert rules["wide_bars"] == ("content_frac", 0.8, None)
    assert {k: v for k, v in rules.items() if k not in ("blurry", "wide_bars")} == {
        k: v for k, v in default.items() if k != "blurry"}
    order = [r.reason for r in cfg.filters]
    assert order.index("blurry") == [r.reason for r in load_config().filters].index("blurry")  # in place
    assert order[-1] == "wide_bars"  # a new reason is added


def test_a_rule_is_removed_only_explicitly(tmp_path):
    cfg = _cfg(tmp_path, "filters:\n  - {reason: too_much_motion, enabled: false}\n")
    assert "too_much_motion" not in _rules(cfg) and len(cfg.filters) == len(load_config().filters) - 1
    with pytest.raises(ConfigError, match="no rule with reason 'nosuch'"):
        _cfg(tmp_path, "filters:\n  - {reason: nosuch, enabled: false}\n")
    with pytest.raises(ConfigError, match="second rule for reason 'blurry'"):
        _cfg(tmp_path, "filters:\n  - {column: sharpness, min: 1, reason: blurry}\n"
                       "  - {column: sharpness, min: 2, reason: blurry}\n")


@pytest.mark.parametrize("rule, words", [
    ("{column: sharpness, min: -1, reason: blurry}", "negative"),
    ("{column: luma_mean, min: 50, max: 40, reason: dark}", "must be below max"),
    ("{column: motion, min: 0.1, max: 0.1, reason: static}", "must be below max"),
])
def test_bad_bounds_fail_with_one_line(tmp_path, rule, words, cli):
    with pytest.raises(ConfigError) as e:
        _cfg(tmp_path, f"filters:\n  - {rule}\n")
    assert words in str(e.value) and "filters.0" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "bad.yaml").write_text(f"filters:\n  - {rule}\n")
    line = _one_line_exit_2(cli("run", str(tmp_path), str(tmp_path / "out"), "--config", str(tmp_path / "bad.yaml"),
                                 "--dry-run"))
    assert words in line
