"""The table stages over partitions give the final tables that the whole-table path gives (synthetic scan parts);
the sharded path (pipelines/table_shards.py) gives the driver path's, and balance from counts (curation/balance_counts.py)."""
import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # bench/ is a folder of scripts in the repo, not an installed package

from bench import driver_bench  # noqa: E402
from bench.driver_baseline import run_table_stages as old_table_stages  # noqa: E402
from curation.balance import BalanceParams  # noqa: E402
from curation.balance_counts import cell_budgets, cell_labels, cell_thresholds, sample_hierarchy, taken  # noqa: E402
from curation.sources import VideoFile  # noqa: E402
from pipelines.config import ConfigError, load_config  # noqa: E402
from pipelines.run import run_table_stages, table_stage_run  # noqa: E402
from pipelines.store import RunStore  # noqa: E402
from schemas import read_table  # noqa: E402

N_PARTS, VIDEOS_PER_PART = 5, 6


@pytest.fixture(autouse=True)
def _many_duplicates(monkeypatch):
    monkeypatch.setattr(driver_bench, "COPY_SHARE", 0.3)  # byte copies of the video before: exact duplicates
    monkeypatch.setattr(driver_bench, "NEAR_SHARE", 0.2)  # phashes 2 bits off another clip's: perceptual ones


def _store(tmp_path, balance: bool) -> tuple[RunStore, object, list[str]]:
    """A memory:// run folder (table tasks then run in this process) with synthetic committed scan parts."""
    store = RunStore(f"memory://tables-{uuid.uuid4().hex[:8]}")
    jpeg = driver_bench._jpeg()
    n_inputs = N_PARTS * VIDEOS_PER_PART
    for p in range(N_PARTS):
        store.write_part(driver_bench.SCAN_KEY, driver_bench.part_tables(p, p * VIDEOS_PER_PART, VIDEOS_PER_PART, jpeg), part=f"part-{p:06d}")
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(driver_bench.CONFIG.replace("balance: {enabled: true}", f"balance: {{enabled: {str(balance).lower()}}}"))
    return store, load_config(cfg_file), [driver_bench._uri(i) for i in range(n_inputs)]


def _rows(store: RunStore, name: str, drop: tuple[str, ...] = ()) -> list[dict]:
    t = read_table(store.uri(name), name)
    rows = t.drop_columns([c for c in drop if c in t.column_names]).to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def _files(uris: list[str]) -> list[VideoFile]:
    return [VideoFile(u, u.split("bench-in/", 1)[1], 1) for u in uris]


def test_partitioned_stages_equal_the_old_whole_table_path(tmp_path, monkeypatch):
    """Narrow projection + per-group tasks (groups of 2 parts here) vs the old code path: same final tables."""
    monkeypatch.setattr("pipelines.run.groups", lambda parts: [parts[i:i + 2] for i in range(0, len(parts), 2)])
    store, cfg, uris = _store(tmp_path, balance=False)
    old = old_table_stages(store, driver_bench.SCAN_KEY, cfg, uris)
    # dup_kind/dup_similarity of a member without a direct pair to its centre depend on which star edges
    # dedup drew between equal hashes, i.e. on row order (the old path sorted by uri): not compared
    labels = ("dup_kind", "dup_similarity")
    expected = {name: _rows(store, name, labels) for name in ("videos", "clips", "curated", "errors")}
    run = table_stage_run(cfg, store, _files(uris), driver_bench.SCAN_KEY)
    run_table_stages(run)
    assert len(run.groups) == 3 and sum(run.group_rows) == old["clips"]
    for name, rows in expected.items():
        assert _rows(store, name, labels) == rows, name
    clips = read_table(store.uri("clips"), "clips")
    for kind in ("exact", "perceptual"):  # the planted copies were found
        assert pc.sum(pc.equal(clips.column("dup_kind"), kind).cast("int64")).as_py() > 0, kind
    assert 0 < old["curated"] < old["clips"]


def test_materialised_table_gives_the_same_tables_as_the_narrow_one(tmp_path):
    """A stage that needs every column (custom, caption) switches to the whole table: same result, balance included."""
    store, cfg, uris = _store(tmp_path, balance=True)
    narrow = table_stage_run(cfg, store, _files(uris), driver_bench.SCAN_KEY)
    run_table_stages(narrow)
    expected = {name: _rows(store, name) for name in ("clips", "curated")}
    full = table_stage_run(cfg, store, _files(uris), driver_bench.SCAN_KEY)
    full.table_clips()
    run_table_stages(full)
    assert narrow.clips is None and full.clips is not None
    for name, rows in expected.items():
        assert _rows(store, name) == rows, name
    assert narrow.record.counts["curated"] == len(expected["curated"]) < narrow.record.counts["clips"]


# ------------------------------------------------------------------ the sharded path

@pytest.fixture
def parts(tmp_path, monkeypatch):
    """A local run folder (Ray tasks write into it) with synthetic committed scan parts, and its input URIs;
    the table tasks take 2 parts per group."""
    monkeypatch.setattr("pipelines.run.groups", lambda parts: [parts[i:i + 2] for i in range(0, len(parts), 2)])
    store = RunStore(str(tmp_path / f"out-{uuid.uuid4().hex[:6]}"))
    jpeg = driver_bench._jpeg()
    for p in range(N_PARTS):
        store.write_part(driver_bench.SCAN_KEY, driver_bench.part_tables(p, p * VIDEOS_PER_PART, VIDEOS_PER_PART, jpeg),
                         part=f"part-{p:06d}")
    return store, [driver_bench._uri(i) for i in range(N_PARTS * VIDEOS_PER_PART)]


def _run_mode(store, uris, tmp_path, mode: str, balance: str | None = None):
    """The table stages with tables.mode `mode`; `balance`: the balance section (None: the stage off)."""
    cfg = driver_bench.CONFIG
    assert "balance: {enabled: true}" in cfg and "\nbalance: {mode: select, target_fraction: 0.5}" in cfg
    if balance is None:
        cfg = cfg.replace("balance: {enabled: true}", "balance: {enabled: false}")
    else:
        cfg = cfg.replace("\nbalance: {mode: select, target_fraction: 0.5}", f"\nbalance: {balance}")
    cfg_file = tmp_path / f"cfg-{mode}.yaml"
    cfg_file.write_text(cfg + f"tables: {{mode: {mode}}}\n")
    run = table_stage_run(load_config(cfg_file), store, _files(uris),
                          driver_bench.SCAN_KEY)
    run_table_stages(run)
    return run, {name: sorted(read_table(store.uri(name), name).to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))
                 for name in ("videos", "clips", "curated", "errors")}


def test_sharded_dedup_gives_the_driver_paths_tables(parts, tmp_path, ray_local):
    """Filter, exact dedup by hash shuffle, perceptual by index partitions as tasks, centre grouping over the
    gathered rows: row for row the driver path's tables, dup labels included."""
    store, uris = parts
    driver, expected = _run_mode(store, uris, tmp_path, "driver")
    sharded, got = _run_mode(store, uris, tmp_path, "sharded")
    assert sharded.narrow is None and sharded.clips is None  # no clip table was ever on the driver
    assert len(sharded.shards.files) == 3 and sharded.shards.n == driver.record.counts["clips"]
    assert got == expected
    for kind in ("exact", "perceptual"):
        assert sharded.record.counts["dedup"]["pairs"][kind] == driver.record.counts["dedup"]["pairs"][kind] > 0
    assert sharded.record.counts["dedup"]["involved"] < sharded.shards.n
    files_with_copies = driver.record.counts["dedup"]["identical_file_groups"]
    assert sharded.record.counts["dedup"]["identical_file_groups"] == files_with_copies > 0
    assert not Path(store.path("_work", "tables")).exists()


@pytest.mark.parametrize("quota", [None, "duration"])
def test_sharded_balance_selects_the_target_from_the_eligible(parts, tmp_path, ray_local, quota):
    store, uris = parts
    spec = "{mode: select, target_fraction: 0.5" + ("" if quota is None else f", quota_by: {quota}") + "}"
    driver, expected = _run_mode(store, uris, tmp_path, "driver", spec)
    sharded, got = _run_mode(store, uris, tmp_path, "sharded", spec)
    assert len(got["curated"]) == len(expected["curated"]) == driver.record.counts["balance"]["target"]
    by_id = {r["clip_id"]: r for r in expected["clips"]}
    for r in got["clips"]:  # the same clips were eligible: only "balance" verdicts may differ
        other = by_id[r["clip_id"]]
        assert [x for x in r["drop_reasons"] if x != "balance"] == [x for x in other["drop_reasons"] if x != "balance"]
        if "balance" in r["drop_reasons"]:
            assert r["drop_reasons"] == [*[x for x in other["drop_reasons"] if x != "balance"], "balance"]
    if quota:
        assert sharded.record.counts["balance"]["quota"] == driver.record.counts["balance"]["quota"]


def test_sharded_balance_weights_average_one_over_the_eligible(parts, tmp_path, ray_local):
    store, uris = parts
    _, got = _run_mode(store, uris, tmp_path, "sharded", "{mode: weight, quota_by: resolution}")
    eligible = [r for r in got["clips"] if not [x for x in r["drop_reasons"] if x != "balance"]]
    assert eligible and all(r["sample_weight"] is not None for r in eligible)
    assert np.mean([r["sample_weight"] for r in eligible]) == pytest.approx(1.0, abs=1e-4)
    assert all(r["sample_weight"] is None for r in got["clips"] if r not in eligible)
    assert len(got["curated"]) == len(eligible)  # weight mode drops nothing


def _clustered(n: int, seed: int = 0) -> pa.Table:
    """Clips with 8-d embeddings around 4 centres of very different sizes (plus a few without an embedding)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 8)) * 5
    which = rng.choice(4, n, p=[0.7, 0.2, 0.07, 0.03])
    emb = (centres[which] + rng.normal(size=(n, 8)) * 0.1).astype(np.float32)
    emb_col = pa.array([None if i % 50 == 0 else e.tolist() for i, e in enumerate(emb)], pa.list_(pa.float32()))
    return pa.table({"clip_id": [f"{i:016x}" for i in rng.integers(0, 2**62, n)], "embedding": emb_col,
                     "width": pa.array(np.where(np.arange(n) % 3 == 0, 1920, 640), pa.int32()),
                     "height": pa.array(np.where(np.arange(n) % 3 == 0, 1080, 360), pa.int32())})


@pytest.mark.parametrize("mode,quota", [("select", None), ("select", "resolution"), ("weight", None)])
def test_balance_from_counts_takes_each_cells_budget(mode, quota):
    """Partitions label and count, the driver splits the budget, thresholds take exactly budget[cell] per cell,
    however the clips are split into partitions."""
    clips = _clustered(3000)
    params = BalanceParams(mode=mode, target_fraction=0.3, levels=(4, 2), quota_by=quota)
    hier = sample_hierarchy(clips.take(pa.array(np.arange(0, 3000, 3))), 3000, params)  # a third as the sample
    assert hier.n_leaves == 5 and len(hier.parents) == 1
    pieces = [clips.slice(0, 1100), clips.slice(1100, 900), clips.slice(2000)]  # three "partitions"
    labels = [cell_labels(p, hier, params) for p in pieces]
    n_cells = hier.n_leaves * (4 if quota else 1)
    counts = sum(np.bincount(c, minlength=n_cells) for c, _ in labels).reshape(-1, hier.n_leaves)
    budgets, report = cell_budgets(counts, hier, params)
    assert report["target"] == 900 and budgets.sum() == pytest.approx(900)
    assert np.all(budgets <= counts + 1e-9)
    # top-down: the top-level clusters share the budget equally unless one holds fewer clips than its share
    top_counts = np.bincount(hier.parents[0], weights=counts.sum(0))
    top_budgets = np.bincount(hier.parents[0], weights=budgets.sum(0))
    share = top_budgets[top_budgets < top_counts]
    assert len(share) and np.ptp(share) <= 1 + 1e-9
    if mode == "select":
        cell = np.concatenate([c for c, _ in labels])
        key = np.concatenate([k for _, k in labels])
        row = np.arange(len(cell))
        thresholds = cell_thresholds(cell, key, row, budgets.ravel())
        chosen = taken(cell, key, row, thresholds, n_cells)
        assert chosen.sum() == 900
        assert np.array_equal(np.bincount(cell[chosen], minlength=n_cells), np.round(budgets.ravel()).astype(int))
        # a threshold never depends on how the rows were split: taking the cells whole gives the same verdicts
        assert np.array_equal(taken(cell, key, row, cell_thresholds(cell[::-1], key[::-1], row[::-1], budgets.ravel()), n_cells),
                              chosen)


def test_sharded_mode_that_the_dag_does_not_allow_fails_in_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tables: {mode: sharded}\nstages:\n  mine: {entrypoint: 'os:getcwd', depends_on: [dedup]}\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert "tables.mode sharded" in str(e.value) and "\n" not in str(e.value)


def test_shard_files_hold_the_content_words_of_the_exact_key():
    from pipelines.table_shards import content_words

    videos = pa.table({"video_id": ["a", "b"], "content_hash": ["0f" * 32, "ab" * 32]})
    clips = pa.table({"video_id": ["b", "a", "zz"]})
    w1, w2 = content_words(clips, videos)
    assert w1.to_pylist() == [int("ab" * 8, 16), int("0f" * 8, 16), None]
    assert w2.to_pylist()[:2] == [int("ab" * 8, 16), int("0f" * 8, 16)]
