"""The table stages over partitions give the final tables that the whole-table path gives (synthetic scan parts)."""
import json
import sys
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # bench/ is a folder of scripts in the repo, not an installed package

from bench import driver_bench  # noqa: E402
from bench.driver_baseline import run_table_stages as old_table_stages  # noqa: E402
from curation.sources import VideoFile  # noqa: E402
from pipelines.config import load_config  # noqa: E402
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
