"""The table stages over partitions (pipelines/table_shards.py): the old whole-table path's tables, the golden
decisions of balance, custom stages on partitions, and balance from counts (curation/balance_counts.py)."""
import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # bench/ is a folder of scripts in the repo, not an installed package

from bench import driver_bench  # noqa: E402
from bench.driver_baseline import run_table_stages as old_table_stages  # noqa: E402
from curation.balance import BalanceParams  # noqa: E402
from curation.balance_counts import cell_budgets, cell_labels, cell_thresholds, sample_hierarchy, taken  # noqa: E402
from curation.sources import VideoFile  # noqa: E402
from pipelines.config import load_config  # noqa: E402
from pipelines.run import run_table_stages, table_stage_run  # noqa: E402
from pipelines.store import RunStore  # noqa: E402
from schemas import read_table  # noqa: E402
from _golden import check_golden  # noqa: E402

N_PARTS, VIDEOS_PER_PART = 5, 6


@pytest.fixture(autouse=True)
def _many_duplicates(monkeypatch):
    monkeypatch.setattr(driver_bench, "COPY_SHARE", 0.3)  # byte copies of the video before: exact duplicates
    monkeypatch.setattr(driver_bench, "NEAR_SHARE", 0.2)  # phashes 2 bits off another clip's: perceptual ones


def _rows(store: RunStore, name: str, drop: tuple[str, ...] = ()) -> list[dict]:
    t = read_table(store.uri(name), name)
    rows = t.drop_columns([c for c in drop if c in t.column_names]).to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def _files(uris: list[str]) -> list[VideoFile]:
    return [VideoFile(u, u.split("bench-in/", 1)[1], 1) for u in uris]


@pytest.fixture
def parts(tmp_path, monkeypatch):
    """A run folder with synthetic committed scan parts (5 parts, 30 videos, copies planted), and its input URIs;
    the table tasks take 2 parts per group."""
    monkeypatch.setattr("pipelines.run.groups", lambda parts: [parts[i:i + 2] for i in range(0, len(parts), 2)])
    store = RunStore(str(tmp_path / f"out-{uuid.uuid4().hex[:6]}"))
    jpeg = driver_bench._jpeg()
    for p in range(N_PARTS):
        store.write_part(driver_bench.SCAN_KEY, driver_bench.part_tables(p, p * VIDEOS_PER_PART, VIDEOS_PER_PART, jpeg),
                         part=f"part-{p:06d}")
    return store, [driver_bench._uri(i) for i in range(N_PARTS * VIDEOS_PER_PART)]


def _run(store, uris, tmp_path, balance: str | None = None, extra: str = ""):
    """The table stages of driver_bench's config; `balance`: the balance section (None: the stage off)."""
    cfg = driver_bench.CONFIG
    assert "balance: {enabled: true}" in cfg and "\nbalance: {mode: select, target_fraction: 0.5}" in cfg
    if balance is None:
        cfg = cfg.replace("balance: {enabled: true}", "balance: {enabled: false}")
    else:
        cfg = cfg.replace("\nbalance: {mode: select, target_fraction: 0.5}", f"\nbalance: {balance}")
    cfg_file = tmp_path / f"cfg-{uuid.uuid4().hex[:6]}.yaml"
    cfg_file.write_text(cfg + extra)
    run = table_stage_run(load_config(cfg_file), store, _files(uris), driver_bench.SCAN_KEY)
    run_table_stages(run)
    return run, {name: _rows(store, name) for name in ("videos", "clips", "curated", "errors")}


def test_partitions_give_the_old_whole_table_paths_tables(parts, tmp_path, ray_local):
    """Filter, exact dedup by hash shuffle, perceptual by index partitions as tasks, centre grouping over the
    gathered rows (3 partitions of 2 parts): row for row the tables of the old path that held every clip on the
    driver (bench/driver_baseline.py), and the golden decisions."""
    store, uris = parts
    old = old_table_stages(store, driver_bench.SCAN_KEY, load_config(_config(tmp_path, None)), uris)
    # dup_kind/dup_similarity of a member without a direct pair to its centre depend on which star edges
    # dedup drew between equal hashes, i.e. on row order (the old path sorted by uri): not compared
    labels = ("dup_kind", "dup_similarity")
    expected = {name: _rows(store, name, labels) for name in ("videos", "clips", "curated", "errors")}
    run, got = _run(store, uris, tmp_path)
    assert len(run.shards.files) == 3 and run.record.counts["clips"] == old["clips"]
    for name, rows in expected.items():
        assert _rows(store, name, labels) == rows, name
    check_golden("synthetic_dedup", read_table(store.uri("clips"), "clips"))
    for kind in ("exact", "perceptual"):
        assert run.record.counts["dedup"]["pairs"][kind] > 0, kind
    assert run.record.counts["dedup"]["involved"] < run.record.counts["clips"]  # the driver gathered only rows with a pair
    assert run.record.counts["dedup"]["identical_file_groups"] > 0
    assert 0 < old["curated"] < old["clips"]
    assert not Path(store.path("_work", "tables")).exists()  # the shard files are gone once the tables are committed


def _config(tmp_path, balance):
    f = tmp_path / "old.yaml"
    f.write_text(driver_bench.CONFIG.replace("balance: {enabled: true}", f"balance: {{enabled: {str(balance is not None).lower()}}}"))
    return f


@pytest.mark.parametrize("golden,spec", [("synthetic_select", "{mode: select, target_fraction: 0.5}"),
                                         ("synthetic_select_duration", "{mode: select, target_fraction: 0.5, quota_by: duration}"),
                                         ("synthetic_weight_resolution", "{mode: weight, quota_by: resolution}")])
def test_balance_over_partitions_gives_the_golden_decisions(parts, tmp_path, ray_local, golden, spec):
    store, uris = parts
    run, got = _run(store, uris, tmp_path, spec)
    check_golden(golden, read_table(store.uri("clips"), "clips"))
    if "select" in spec:
        assert len(got["curated"]) == run.record.counts["balance"]["target"] == run.record.counts["balance"]["selected"]


def test_a_custom_stage_runs_on_every_partition_and_later_stages_see_its_rows(parts, tmp_path, ray_local):
    """A stage with an entrypoint needs every column: its step is folded into new shard files before dedup reads
    them, and a module beside the config (not installed) reaches the workers by value."""
    store, uris = parts
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "drop_odd_videos.py").write_text(
        "import pyarrow as pa, pyarrow.compute as pc\n"
        "def drop(clips, stage):\n"
        "    odd = pc.equal(pc.bit_wise_and(pc.cast(pc.utf8_slice_codeunits(clips.column('uri'), -5, -4), 'int64'), 1), 1)\n"
        "    return clips.filter(pc.invert(odd))\n")
    sys.path.insert(0, str(tmp_path / "mods"))
    try:
        extra = "stages:\n  odd: {entrypoint: 'drop_odd_videos:drop', depends_on: [filter]}\n  dedup: {depends_on: [odd]}\n"
        run, got = _run(store, uris, tmp_path, None, extra)
    finally:
        sys.path.remove(str(tmp_path / "mods"))
    names = {r["uri"][-5] for r in got["clips"]}
    assert names and all(int(c) % 2 == 0 for c in names)  # the odd videos' rows are gone from every partition
    assert run.shards.generation == 1  # the custom step was folded into new shard files before dedup read them
    assert run.record.counts["dedup"]["pairs"]["exact"] > 0
    assert {r["clip_id"] for r in got["curated"]} <= {r["clip_id"] for r in got["clips"]}


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


def test_shard_files_hold_the_content_words_of_the_exact_key():
    from pipelines.table_shards import content_words

    videos = pa.table({"video_id": ["a", "b"], "content_hash": ["0f" * 32, "ab" * 32]})
    clips = pa.table({"video_id": ["b", "a", "zz"]})
    w1, w2 = content_words(clips, videos)
    assert w1.to_pylist() == [int("ab" * 8, 16), int("0f" * 8, 16), None]
    assert w2.to_pylist()[:2] == [int("ab" * 8, 16), int("0f" * 8, 16)]
