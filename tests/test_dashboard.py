"""Dashboard: DuckDB views, portability of dashboard.duckdb, HTML report, compare, query."""
import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import cv2
import duckdb
import numpy as np
import pyarrow.compute as pc
import pytest

from curation.dashboard import build_dashboard, compare_runs, compare_runs_dict, query
from curation.dashboard.thumbnails import THUMB_WIDTH, Thumbnailer
from schemas import RunRecord, read_table
from _dashboard_run import EVIL_MESSAGE, SCRIPT_NAME, make_run

VIEWS = ["funnel", "score_quantiles", "score_histograms", "by_source", "by_resolution", "dup_groups",
         "error_summary", "runs", "inputs", "clip_outcomes"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, test_videos) -> dict:
    """Run A (built dashboard) and run B (stricter blur, looser black frames, sharper scores)."""
    root = tmp_path_factory.mktemp("dash")
    a = make_run(root / "OUT", root / "inputs", test_videos, "a")
    b = make_run(root / "OUTB", root / "inputs", test_videos, "b")
    db, html = build_dashboard(str(a))
    return {"root": root, "a": a, "b": b, "db": db, "html": html}


def _sql(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_build_writes_both_files_and_all_views(runs):
    assert runs["db"] == runs["a"] / "dashboard.duckdb" and runs["db"].stat().st_size > 0
    assert runs["html"] == runs["a"] / "dashboard.html" and runs["html"].stat().st_size > 0
    names = {r[0] for r in _sql(runs["db"], "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    assert set(VIEWS) <= names
    for view in VIEWS:  # each one runs
        _sql(runs["db"], f"SELECT * FROM {view}")


def test_funnel_adds_up(runs):
    rows = _sql(runs["db"], "SELECT level, stage, kind, count, hours, remaining FROM funnel")
    for level in ("inputs", "clips"):
        steps = [r for r in rows if r[0] == level]
        total = [r for r in steps if r[2] == "total"][0]
        removed = sum(r[3] for r in steps if r[2] == "removed")
        final = [r for r in steps if r[2] == "remaining"][0]
        assert total[3] == removed + final[3], level
        assert final[5] == final[3]
        assert total[4] == pytest.approx(sum(r[4] for r in steps if r[2] != "total"))
    clips = read_table(str(runs["a"] / "clips"), "clips")
    kept = pc.sum(clips["kept"]).as_py()
    by = {(r[0], r[1]): r for r in rows}
    assert by[("clips", "clips")][3] == clips.num_rows == 24
    assert by[("clips", "curated")][3] == kept == read_table(str(runs["a"] / "curated"), "curated").num_rows
    # 4 videos + 1 broken file, each counted once
    assert by[("inputs", "inputs")][3] == 5
    assert (by[("inputs", "error")][3], by[("inputs", "dropped")][3], by[("inputs", "curated")][3]) == (1, 1, 3)
    # every configured rule appears in config order, then the reasons no rule names
    stages = [r[1] for r in rows if r[0] == "clips" and r[2] == "removed"]
    assert stages == ["too_short", "static", "too_much_motion", "blurry", "dark", "black_frames",
                      "low_aesthetic", "duplicate"]


def test_multi_reason_clip_is_removed_once_but_flagged_everywhere(runs):
    multi = _sql(runs["db"], "SELECT count(*) FROM clips WHERE len(drop_reasons) > 1")[0][0]
    assert multi > 0  # the synthetic run has such clips, so the next check means something
    removed, flagged = _sql(runs["db"], "SELECT sum(count), sum(flagged) FROM funnel WHERE kind = 'removed' "
                                        "AND level = 'clips'")[0]
    dropped = _sql(runs["db"], "SELECT count(*) FROM clips WHERE NOT kept")[0][0]
    reasons = _sql(runs["db"], "SELECT sum(len(drop_reasons)) FROM clips")[0][0]
    assert removed == dropped and flagged == reasons > dropped


def test_inputs_outcome_and_reasons(runs):
    rows = dict((r[0], r[1:]) for r in _sql(runs["db"], "SELECT relpath, outcome, reasons, source FROM inputs"))
    assert rows[SCRIPT_NAME] == ("dropped", ["black_frames", "static"], "<script>alert(1)<")
    assert rows["city/broken.mp4"][0] == "error"
    assert rows["city/broken.mp4"][1] == ["probe: InvalidDataError"]
    by_source = {r[0]: r[1:] for r in _sql(runs["db"], "SELECT source, inputs, error_inputs FROM by_source")}
    assert by_source["city"] == (2, 1) and by_source["nature"] == (2, 0)


def test_scores_that_are_all_null_are_reported_not_invented(runs):
    rows = {r[0]: r[1:] for r in _sql(
        runs["db"], "SELECT score, measured, p50 FROM score_quantiles WHERE subset = 'all'")}
    assert rows["aesthetic"] == (0, None)
    assert rows["sharpness"][0] == 24 and rows["sharpness"][1] is not None
    hist = _sql(runs["db"], "SELECT score, sum(clips) FROM score_histograms GROUP BY score")
    assert dict(hist)["sharpness"] == 24 and "aesthetic" not in dict(hist)
    p50 = np.quantile(read_table(str(runs["a"] / "clips"), "clips")["sharpness"].to_numpy(), 0.5)
    assert rows["sharpness"][1] == pytest.approx(p50, rel=1e-6)


def test_other_views(runs):
    assert _sql(runs["db"], "SELECT clips, kept_clips, representative IS NOT NULL FROM dup_groups") == [(2, 0, True)]
    assert _sql(runs["db"], "SELECT stage, error_type, errors, example_message FROM error_summary") == [
        ("probe", "InvalidDataError", 1, EVIL_MESSAGE)]
    res = dict(_sql(runs["db"], "SELECT resolution, clips FROM by_resolution"))
    assert res == {"720p": 6, "360p": 6, "240p": 12}
    run = _sql(runs["db"], "SELECT run_id, config->'filters'->0->>'reason' FROM runs")
    assert run == [("run-a", "too_short")]


_PROBE = "import duckdb, sys; print(duckdb.connect(sys.argv[1], read_only=True).execute('select sum(count) from funnel').fetchall()[0][0])"


def _probe(cwd: Path, db: str) -> str:
    done = subprocess.run([sys.executable, "-c", _PROBE, db], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_database_opens_from_another_cwd_and_after_moving(runs, tmp_path):
    # a copy, so the module's folder stays put for the other tests
    out = tmp_path / "OUT"
    shutil.copytree(runs["a"], out, symlinks=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    expected = _probe(runs["a"], "dashboard.duckdb")
    assert _probe(elsewhere, str(out / "dashboard.duckdb")) == expected
    assert _probe(tmp_path, "OUT/dashboard.duckdb") == expected
    out.rename(tmp_path / "OUT2")
    assert _probe(elsewhere, str(tmp_path / "OUT2" / "dashboard.duckdb")) == expected
    assert _probe(tmp_path, "OUT2/dashboard.duckdb") == expected
    cli = shutil.which("duckdb")  # not installable here (no duckdb-cli wheel, no Debian package); checked when present
    if cli:
        done = subprocess.run([cli, "-csv", "-noheader", "OUT2/dashboard.duckdb", "-c",
                               "select sum(count) from funnel"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.strip() == expected, done.stderr
    # nothing in the database points back at the folder it was built in
    sql = " ".join(r[0] for r in _sql(tmp_path / "OUT2" / "dashboard.duckdb", "SELECT sql FROM duckdb_views()"))
    assert str(runs["a"]) not in sql and "read_parquet" not in sql


def test_html_escapes_data_and_is_self_contained(runs):
    page = runs["html"].read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.mp4" in page
    assert "<script" not in page.lower()  # the report has no script at all, and data never becomes one
    assert "&lt;img src=x onerror=alert(2)&gt;" in page and "<img src=x" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # nothing fetched at view time
    assert page.count("<svg") >= 10  # two funnels + a histogram per measured score
    assert 'class="thr"' in page  # threshold lines drawn


def test_html_thumbnails_are_small_jpegs(runs):
    page = runs["html"].read_text(encoding="utf-8")
    uris = re.findall(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    sections = page.split('<div class="score" id="score-')[1:]
    assert len(sections) == 10  # one per measured score; the all-null ones get none
    for section in sections:  # percentile clips (dup_similarity has only 2 measured clips)
        assert section.count('<img src="data:image/jpeg;base64,') >= 2, section[:40]
    assert len(uris) >= 40
    img = cv2.imdecode(np.frombuffer(base64.b64decode(uris[0]), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] == THUMB_WIDTH
    assert "no thumbnail" not in page


def test_thumbnails_come_from_the_keyframes_table_not_the_sources(runs, tmp_path, monkeypatch):
    """The report reads stored keyframes; a moved source changes nothing, a clip without a keyframe gets a placeholder."""
    import fsspec
    from fsspec.spec import AbstractFileSystem

    cid = read_table(str(runs["a"] / "clips"), "clips").column("clip_id")[0].as_py()
    opened = []
    real_open = AbstractFileSystem.open
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a))  # no video reader at all
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a, **k: opened.append(a))
    monkeypatch.setattr(AbstractFileSystem, "open", lambda self, path, *a, **k: opened.append(path) if path.endswith(".mp4") else real_open(self, path, *a, **k))
    thumbs = Thumbnailer(str(runs["a"]))
    page = thumbs.fill(thumbs.request(cid, "first <b>") + "|" + thumbs.request("no-such-clip", "missing"))
    first, second = page.split("|")
    assert first.startswith('<img src="data:image/jpeg;base64,') and 'alt="first &lt;b&gt;"' in first
    assert second.startswith('<div class="noimg">no thumbnail: no keyframe stored for this clip')
    assert opened == [] and fsspec is not None


def test_dup_groups_drawn_side_by_side_with_every_drop_reason(runs):
    page = runs["html"].read_text(encoding="utf-8")
    dup = page.split("<h2>Duplicate groups</h2>")[1].split("<h2>")[0]
    assert dup.count('<img src="data:image/jpeg;base64,') == 2  # the kept clip and its duplicate, in one row
    assert "kept clip of the group" in dup and "perceptual match, similarity 0.970" in dup and "matched span" in dup
    # a clip dropped for several reasons shows all of them, not only the first
    clips = read_table(str(runs["a"] / "clips"), "clips").to_pylist()
    multi = [c for c in clips if len(c["drop_reasons"]) >= 2]
    assert multi, "the synthetic run has a clip with two reasons"
    assert any(", ".join(c["drop_reasons"]) in page or ", ".join(reversed(c["drop_reasons"])) in page for c in multi)


def test_compare_detects_threshold_changes_shifts_and_flips(runs):
    d = compare_runs_dict(str(runs["a"]), str(runs["b"]))
    changes = {(x["key"], x["a"], x["b"]) for x in d["threshold_changes"]}
    assert changes == {("filters[blurry].min", 50.0, 120.0), ("filters[black_frames].max", 0.5, 0.9)}
    a = read_table(str(runs["a"] / "clips"), "clips").to_pylist()
    b = {r["clip_id"]: r for r in read_table(str(runs["b"] / "clips"), "clips").to_pylist()}
    to_dropped = sorted(r["clip_id"] for r in a if r["kept"] and not b[r["clip_id"]]["kept"])
    to_kept = sorted(r["clip_id"] for r in a if not r["kept"] and b[r["clip_id"]]["kept"])
    assert to_dropped and to_kept  # both directions happen in the fixture
    assert sorted(r["clip_id"] for r in d["flipped"]["kept_to_dropped"]) == to_dropped
    assert sorted(r["clip_id"] for r in d["flipped"]["dropped_to_kept"]) == to_kept
    shifts = {s["score"]: s for s in d["score_shifts"]}
    assert shifts["sharpness"]["b_p50"] == pytest.approx(1.2 * shifts["sharpness"]["a_p50"], rel=1e-5)
    assert shifts["motion"]["delta_p50"] == 0 and "aesthetic" not in shifts
    text = compare_runs(str(runs["a"]), str(runs["b"]))
    assert "filters[blurry].min" in text and all(c in text for c in to_dropped + to_kept)


def test_query_readme_examples(runs):
    out = str(runs["a"])
    least_sharp = query(out, "SELECT relpath, clip_index, start_s, sharpness FROM clip_outcomes "
                             "WHERE kept ORDER BY sharpness LIMIT 20")
    kept = [r for r in read_table(str(runs["a"] / "curated"), "curated").to_pylist()]
    lines = least_sharp.splitlines()
    assert lines[0].split() == ["relpath", "clip_index", "start_s", "sharpness"]
    assert f"{min(r['sharpness'] for r in kept):.6g}" in lines[2]
    assert lines[-1] == f"({len(kept)} rows)"
    hours = query(out, "SELECT source, sum(kept_hours) AS kept_hours FROM by_source GROUP BY source ORDER BY source")
    assert "city" in hours and "nature" in hours
    with pytest.raises(FileNotFoundError):
        query(str(runs["root"] / "nope"), "SELECT 1")


def test_empty_run_folder_builds(tmp_path):
    record = RunRecord(run_id="r0", input_uri="/in", output_uri=str(tmp_path), started_at="2026-01-01T00:00:00Z",
                       config={"filters": [{"column": "sharpness", "min": 1.0, "reason": "blurry"}]},
                       config_hash="x", versions={}, status="nothing_to_do")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "r0.json").write_text(record.to_json())
    db, html = build_dashboard(str(tmp_path))
    assert _sql(db, "SELECT step, stage, count FROM funnel WHERE level = 'clips'") == [
        (0, "clips", 0), (1, "blurry", 0), (2, "curated", 0)]
    assert _sql(db, "SELECT stage, count FROM funnel WHERE level = 'inputs'") == [
        ("inputs", 0), ("error", 0), ("dropped", 0), ("curated", 0)]
    assert "nothing_to_do" in html.read_text()


CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path("/tmp/vidcurate_dashboard.png")


@pytest.mark.browser
def test_html_in_headless_chromium(runs):
    """Open the report in Debian's chromium: no errors, charts and thumbnails render, no script runs."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    console_errors, page_errors, dialogs = [], [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(runs["html"].as_uri())
            page.wait_for_load_state("load")
            svg_count = page.locator("svg").count()
            thr_lines = page.locator("svg line.thr").count()
            widths = page.eval_on_selector_all("img", "els => els.map(e => [e.src.slice(0, 11), e.naturalWidth])")
            scripts = page.locator("script").count()
            text = page.locator("body").inner_text()
            page_width = page.evaluate("() => document.documentElement.scrollWidth")
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert console_errors == [] and page_errors == [] and dialogs == []
    assert svg_count >= 10 and thr_lines >= 5
    assert len(widths) >= 40 and all(w == ["data:image/", THUMB_WIDTH] for w in widths)  # all decoded, none remote
    assert scripts == 0
    assert page_width <= 1400  # long file names and messages wrap instead of widening the page
    assert SCRIPT_NAME in text and EVIL_MESSAGE in text


def test_run_folder_on_fsspec_storage_builds():
    """OUT may be any fsspec URI: the database is built locally and uploaded."""
    import fsspec

    fs = fsspec.filesystem("memory")
    record = RunRecord(run_id="r1", input_uri="memory://in", output_uri="memory://dashtest/OUT",
                       started_at="2026-01-01T00:00:00Z", config={}, config_hash="y", versions={},
                       status="succeeded")
    fs.pipe("/dashtest/OUT/runs/r1.json", record.to_json().encode())
    db, html = build_dashboard("memory://dashtest/OUT")
    assert fs.exists(str(db)) and fs.info(str(db))["size"] > 0
    assert b"run r1" in fs.cat(str(html))
    fs.rm("/dashtest", recursive=True)


def test_funnel_and_cli_summary_count_by_one_rule(runs):
    """curation.dashboard.counting gives the funnel's flagged and removed numbers for every reason step."""
    from curation.dashboard.counting import reason_counts, summary_line

    rules = [r[0] for r in _sql(runs["db"], "SELECT reason FROM filter_rules ORDER BY position")]
    clips = read_table(str(runs["a"] / "clips"), "clips")
    counts = reason_counts(clips.column("drop_reasons").to_pylist(), rules)
    funnel = {r[0]: (r[1], r[2]) for r in _sql(runs["db"], "SELECT stage, flagged, count FROM funnel WHERE level = 'clips' AND kind = 'removed'")}
    used = {k: v for k, v in counts.items() if v["flagged"]}
    assert used and all(funnel[r] == (c["flagged"], c["removed"]) for r, c in used.items()), (funnel, counts)
    assert sum(c["removed"] for c in counts.values()) == sum(not k for k in clips.column("kept").to_pylist())
    assert any(c["flagged"] > c["removed"] for c in counts.values())  # the two numbers differ on this run
    line = summary_line(used)
    assert line.startswith("dropped clips by reason (flagged / removed at its funnel step): ")


def test_failed_and_interrupted_runs_show_in_history_but_numbers_come_from_the_latest_succeeded(tmp_path, test_videos):
    out = make_run(tmp_path / "OUT", tmp_path / "inputs", test_videos, "a")
    later = [("run-failed", "failed", {"type": "InputError", "message": "input s3://***@b/in is not readable"}),
             ("run-killed", "interrupted", {"type": "ProcessGone", "message": "found running by run run-failed"})]
    for i, (run_id, status, error) in enumerate(later):
        rec = RunRecord(run_id=run_id, input_uri="/elsewhere", output_uri=str(out), started_at=f"2026-11-22T10:0{i}:00Z",
                        config={"filters": [{"column": "motion", "min": 9.0, "reason": "other_rule"}]}, config_hash="z",
                        versions={}, status=status, error=error, counts={"clips": 999})
        (out / "runs" / f"{run_id}.json").write_text(rec.to_json())
    db, html = build_dashboard(str(out))
    assert _sql(db, "SELECT run_id, status, error_type FROM runs") == [
        ("run-a", "succeeded", None), ("run-failed", "failed", "InputError"), ("run-killed", "interrupted", "ProcessGone")]
    assert _sql(db, "SELECT run_id FROM latest_run") == [("run-a",)]
    assert [r[0] for r in _sql(db, "SELECT reason FROM filter_rules")][:2] == ["too_short", "static"]  # run-a's rules
    page = html.read_text()
    assert "a later run, run-failed, is failed (InputError: input s3://***@b/in is not readable)" in page
    assert "run-killed" in page and "vidcurate run run-a" in page
    counts = page.split("Counts (latest succeeded run)")[1].split("</table>")[0]
    assert "<td>clips</td><td>24</td>" in counts and "999" not in counts
    labels = dict(_sql(db, "SELECT stage, label FROM funnel WHERE level = 'clips'"))
    assert labels["blurry"] == "clips removed by filter rule blurry (sharpness < 50.0 fails)"
    assert labels["duplicate"] == "clips removed at dedup (duplicate of a kept clip)"
    assert labels["clips"] == "clips cut from the decoded videos" and labels["curated"] == "curated clips (no drop reason)"
    assert dict(_sql(db, "SELECT stage, label FROM funnel WHERE level = 'inputs'"))["error"] == \
        "input files with an error and no clips (not decoded)"


def test_bench_run_folder_is_schema_valid_and_builds(tmp_path):
    """bench/dashboard_bench.py's synthetic rows pass the schemas and give a consistent funnel (its numbers mean something)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.dashboard_bench import CLIPS_PER_VIDEO, write_synthetic_run

    counts = write_synthetic_run(tmp_path / "OUT", 3000, seed=1)
    tables = {n: read_table(str(tmp_path / "OUT" / n), n) for n in ("videos", "clips", "curated", "errors", "keyframes")}
    assert tables["clips"].num_rows == tables["keyframes"].num_rows == 3000
    assert tables["videos"].num_rows == 3000 // CLIPS_PER_VIDEO
    assert tables["curated"].num_rows == pc.sum(tables["clips"]["kept"]).as_py() == counts["curated"] > 0
    db, html = build_dashboard(str(tmp_path / "OUT"))
    assert _sql(db, "SELECT count FROM funnel WHERE level = 'clips' AND stage IN ('clips', 'curated') ORDER BY step") == [
        (3000,), (counts["curated"],)]
    assert html.read_text().count('src="data:image/jpeg') >= 20  # thumbnails read from the keyframes table


def test_sketched_quantiles_agree_with_exact_ones_in_shape(runs):
    """The t-digest variant of score_quantiles (used above views.EXACT_QUANTILE_MAX_CLIPS clips) runs on the same tables."""
    from curation.dashboard.views import score_quantiles_sql

    cols = [r[0] for r in _sql(runs["db"], "SELECT score FROM score_columns ORDER BY position")]
    pick = "SELECT score, subset, measured, min, p25, p50, p75, max, quantiles FROM ({}) WHERE score = 'sharpness'"
    exact = _sql(runs["db"], pick.format(score_quantiles_sql(cols, True).split(" AS\n", 1)[1]))
    sketch = _sql(runs["db"], pick.format(score_quantiles_sql(cols, False).split(" AS\n", 1)[1]))
    assert [r[:4] + r[7:8] for r in exact] == [r[:4] + r[7:8] for r in sketch]  # counts, min, max: exact in both
    for e, s in zip(exact, sketch):
        assert e[8] == "exact" and s[8] == "t-digest sketch"
        assert s[3] <= s[4] <= s[5] <= s[6] <= s[7] and s[5] == pytest.approx(e[5], rel=0.25)
