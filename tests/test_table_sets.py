"""Table sets: a run's final tables commit together (OUT/_tables.json, written last) and readers follow it.

A writer killed at any point (between tables, before or after the table set lands, mid-cleanup) leaves
readers on one complete set: every curated clip is in clips, and the counts are one generation's.
"""
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.store import RunStore, TableWriter
from schemas import (FINAL_TABLES, MANIFEST, TABLE_SET, TABLES, open_table_set, read_table, table_from_rows,
                     write_table)

REPO = Path(__file__).resolve().parents[1]


class Killed(BaseException):
    """Stands for SIGKILL inside the process: nothing catches it, nothing cleans up."""


def _tables(gen: int) -> dict[str, pa.Table]:
    """Generation `gen` of a run's final tables: 2 + gen clips, the even ones curated; every row says its gen."""
    n, tag = 2 + gen, f"g{gen}"
    clips = [dict(clip_id=f"{tag}-c{i}", video_id=f"{tag}-v", uri=f"/in/{tag}.mp4", clip_index=i, start_frame=10 * i,
                  end_frame=10 * i + 9, num_frames=10, start_s=i / 2, end_s=(i + 1) / 2, duration_s=0.5, fps=20.0,
                  width=64, height=48, split_reason="cut", drop_reasons=[] if i % 2 == 0 else ["too_short"],
                  kept=i % 2 == 0) for i in range(n)]
    return {
        "videos": table_from_rows([dict(video_id=f"{tag}-v", uri=f"/in/{tag}.mp4", relpath=f"{tag}.mp4",
                                        content_hash=tag, file_size=n)], TABLES["videos"], "videos"),
        "clips": table_from_rows(clips, TABLES["clips"], "clips"),
        "curated": table_from_rows([c for c in clips if c["kept"]], TABLES["curated"], "curated"),
        "errors": table_from_rows([dict(uri=f"/in/bad-{tag}.mp4", stage="probe", error_type="E", message=tag,
                                        run_id=tag)], TABLES["errors"], "errors"),
        "keyframes": table_from_rows([dict(clip_id=c["clip_id"], video_id=c["video_id"], position=0.5, frame_index=5,
                                           t=0.25, width=8, height=8, jpeg=b"\xff\xd8") for c in clips],
                                     TABLES["keyframes"], "keyframes"),
        "dup_segments": TABLES["dup_segments"].empty_table(),
    }


def write_generation(store: RunStore, gen: int) -> None:
    """Write one generation the way pipelines/run.py's _write_tables does: a set, its tables, clips in 2 files."""
    tables = _tables(gen)
    store.begin_table_set()
    store.replace_table("videos", tables["videos"])
    writers = {"clips": store.table_writer("clips", rows_per_file=2), "curated": store.table_writer("curated")}
    writers["clips"].add(tables["clips"])
    writers["curated"].add(tables["curated"])
    for w in writers.values():
        w.commit()
    store.replace_table("errors", tables["errors"])
    store.replace_table_stream("keyframes", iter([tables["keyframes"]]), rows_per_file=3)
    store.replace_table("dup_segments", tables["dup_segments"])
    store.commit_table_set()


def assert_complete(out: str, gen: int) -> None:
    """Readers see exactly generation `gen`, whole: through the pinned set and through per-table reads."""
    want = _tables(gen)
    pinned = open_table_set(out)
    for name in FINAL_TABLES:
        got = pinned.read(name)
        assert got.num_rows == want[name].num_rows, name
        assert got.equals(want[name]), name
        assert read_table(f"{out}/{name}", name).equals(want[name]), name  # the one-table path (training's)
    clip_ids = set(pinned.read("clips").column("clip_id").to_pylist())
    assert set(pinned.read("curated").column("clip_id").to_pylist()) <= clip_ids
    assert set(pinned.read("keyframes").column("clip_id").to_pylist()) == clip_ids


def _root(kind: str, tmp_path) -> str:
    return str(tmp_path / "out") if kind == "file" else f"memory://table-sets-{uuid.uuid4().hex[:8]}/out"


def _on_disk(store: RunStore, name: str) -> set[str]:
    return {os.path.basename(p) for p in store.fs.ls(store.path(name), detail=False) if p.endswith(".parquet")}


def _kill_after_commit_of(monkeypatch, table: str) -> None:
    real = TableWriter.commit

    def commit(self):
        paths = real(self)
        if self.name == table:
            raise Killed(f"killed after {table} was written")
        return paths

    monkeypatch.setattr(TableWriter, "commit", commit)


def _kill_on_json(monkeypatch, store: RunStore, suffix: str) -> None:
    real = store.write_json

    def write_json(rel, data):
        if rel.endswith(suffix) and data.get("version") not in (None, "pinned"):
            raise Killed(f"killed writing {rel}")
        return real(rel, data)

    monkeypatch.setattr(store, "write_json", write_json)


def _kill_on_rm(monkeypatch, store: RunStore) -> None:
    real = store.fs.rm

    def rm(path, *a, **k):
        if "/.tmp-" not in str(path):  # memory:// moves a temporary file by copy and rm
            raise Killed("killed while deleting the older set's files")
        return real(path, *a, **k)

    monkeypatch.setattr(store.fs, "rm", rm)


def _kill_mid_clips(monkeypatch, store: RunStore) -> None:
    real = TableWriter._flush

    def flush(self):
        real(self)
        if self.name == "clips":
            raise Killed("killed between two files of clips")

    monkeypatch.setattr(TableWriter, "_flush", flush)


# kill point -> (how, the generation readers see afterwards)
KILLS = {
    "mid_clips": (lambda mp, store: _kill_mid_clips(mp, store), 1),
    "after_clips": (lambda mp, store: _kill_after_commit_of(mp, "clips"), 1),
    "after_curated": (lambda mp, store: _kill_after_commit_of(mp, "curated"), 1),
    "after_keyframes": (lambda mp, store: _kill_after_commit_of(mp, "keyframes"), 1),
    "before_table_set": (lambda mp, store: _kill_on_json(mp, store, TABLE_SET), 1),
    "after_table_set": (lambda mp, store: _kill_on_json(mp, store, MANIFEST), 2),
    "mid_cleanup": (lambda mp, store: _kill_on_rm(mp, store), 2),
}


@pytest.mark.parametrize("kind", ["file", "memory"])
@pytest.mark.parametrize("point", list(KILLS))
def test_a_kill_leaves_readers_on_a_complete_set(point, kind, tmp_path, monkeypatch):
    out = _root(kind, tmp_path)
    store = RunStore(out)
    write_generation(store, 0)
    write_generation(store, 1)  # generation 2's commit deletes generation 0's files
    assert_complete(out, 1)
    arm, seen = KILLS[point]
    with monkeypatch.context() as mp:
        arm(mp, store)
        with pytest.raises(Killed):
            write_generation(store, 2)
    assert_complete(out, seen)
    before = {n: set(e["files"]) for n, e in open_table_set(out).tables.items()}
    write_generation(RunStore(out), 3)  # the next run: a fresh process's store
    assert_complete(out, 3)
    after = {n: set(e["files"]) for n, e in open_table_set(out).tables.items()}
    for name in FINAL_TABLES:  # the set's files and the replaced set's (kept one more commit); a killed writer's gone
        assert _on_disk(store, name) == after[name] | before[name], name


def test_a_killed_writers_files_are_deleted_by_the_next_commit(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    store = RunStore(out)
    write_generation(store, 1)
    gen1 = {n: _on_disk(store, n) for n in FINAL_TABLES}
    with monkeypatch.context() as mp:
        _kill_after_commit_of(mp, "curated")
        with pytest.raises(Killed):
            write_generation(store, 2)
    orphans = _on_disk(store, "clips") - gen1["clips"]
    assert orphans  # the killed writer's clips files lie next to the set's
    write_generation(RunStore(out), 3)
    gen3 = {n: set(e["files"]) for n, e in open_table_set(out).tables.items()}
    for name in FINAL_TABLES:
        assert _on_disk(store, name) == gen3[name] | gen1[name], name  # generation 1 stays one more commit
    assert not orphans & _on_disk(store, "clips")
    write_generation(RunStore(out), 4)
    assert not gen1["clips"] & _on_disk(store, "clips")  # ...and goes with the next one


def test_a_reader_pinned_before_a_commit_reads_its_whole_set_after_it(tmp_path):
    out = str(tmp_path / "out")
    write_generation(RunStore(out), 1)
    pinned = open_table_set(out)
    assert pinned.read("clips").num_rows == 3
    write_generation(RunStore(out), 2)  # lands while the reader is between two tables
    assert pinned.read("curated").equals(_tables(1)["curated"])  # still generation 1, files kept
    assert open_table_set(out).read("curated").equals(_tables(2)["curated"])
    assert open_table_set(out).version == RunStore(out).table_set()["version"] != pinned.version


@pytest.mark.parametrize("legacy", ["manifests", "loose_files"])
def test_an_older_run_folder_is_read_and_then_pinned_before_new_files_land(legacy, tmp_path, monkeypatch):
    """Folders from before table sets: read through per-table manifests (or every Parquet file); the first set
    written there pins what readers saw, so a kill mid-set still leaves the old tables."""
    out = str(tmp_path / "out")
    old = _tables(1)
    if legacy == "manifests":
        for name, t in old.items():
            RunStore(out).replace_table(name, t)
        os.remove(tmp_path / "out" / TABLE_SET)  # as a run before table sets left it: per-table manifests only
    else:
        for name, t in old.items():
            write_table(t, name, f"{out}/{name}/part-00000.parquet")
    assert open_table_set(out).version is None
    assert_complete(out, 1)
    with monkeypatch.context() as mp:
        _kill_after_commit_of(mp, "clips")
        with pytest.raises(Killed):
            write_generation(RunStore(out), 2)
    assert open_table_set(out).version == "pinned"
    assert_complete(out, 1)
    write_generation(RunStore(out), 2)
    assert_complete(out, 2)


def test_a_fresh_folder_killed_mid_set_shows_no_half_set(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    with monkeypatch.context() as mp:
        _kill_after_commit_of(mp, "curated")
        with pytest.raises(Killed):
            write_generation(RunStore(out), 1)
    tables = open_table_set(out)
    assert tables.version == "pinned" and not tables.has("clips")
    assert read_table(f"{out}/clips", "clips").num_rows == 0  # the files on disk are not a set yet
    from curation.export import ExportError, read_manifest

    with pytest.raises(ExportError, match="no curated table"):
        read_manifest(out)


def test_readers_of_the_run_folder_follow_the_set(tmp_path, monkeypatch):
    """The dashboard's RunFolder, export's manifest reader and training's table read: the earlier set after a
    kill between clips and curated."""
    from curation.dashboard.run_folder import RunFolder
    from curation.export import read_manifest

    out = str(tmp_path / "out")
    write_generation(RunStore(out), 1)
    with monkeypatch.context() as mp:
        _kill_after_commit_of(mp, "clips")
        with pytest.raises(Killed):
            write_generation(RunStore(out), 2)
    folder = RunFolder(out)
    assert folder.table("clips").equals(_tables(1)["clips"])
    fs, files = folder.tables().files("clips")
    assert len(files) == 2 and all(os.path.basename(f).startswith(_tables_version(out, "clips")) for f in files)
    curated, videos = read_manifest(out)
    assert [r["clip_id"] for r in curated] == ["g1-c0", "g1-c2"] and list(videos) == ["g1-v"]
    assert read_table(f"{out}/curated", "curated").equals(_tables(1)["curated"])


def _tables_version(out: str, name: str) -> str:
    return open_table_set(out).tables[name]["version"]


# A real SIGKILL: the writer process dies at the point, with no Python unwinding at all.
_KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
from pipelines.store import RunStore, TableWriter
import test_table_sets as t

point = sys.argv[1]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
store = RunStore(sys.argv[2])
if point in ("after_clips", "after_curated"):
    real = TableWriter.commit
    def commit(self):
        paths = real(self)
        if self.name == point.split("_")[1]:
            die()
        return paths
    TableWriter.commit = commit
else:
    real = store.write_json
    def write_json(rel, data):
        if point == "before_table_set" and rel == t.TABLE_SET and data["version"] != "pinned":
            die()
        out = real(rel, data)
        if point == "after_table_set" and rel == t.TABLE_SET and data["version"] != "pinned":
            die()
        return out
    store.write_json = write_json
t.write_generation(store, 2)
"""


@pytest.mark.parametrize("point,seen", [("after_clips", 1), ("after_curated", 1), ("before_table_set", 1),
                                        ("after_table_set", 2)])
def test_sigkill_at_each_point_leaves_a_complete_set(point, seen, tmp_path):
    out = str(tmp_path / "out")
    write_generation(RunStore(out), 1)
    script = _KILLER.format(repo=str(REPO), tests=str(REPO / "tests"))
    proc = subprocess.run([sys.executable, "-c", script, point, out], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert_complete(out, seen)
    write_generation(RunStore(out), 3)
    assert_complete(out, 3)


def test_the_pipelines_table_write_is_one_set(tmp_path, monkeypatch, ray_local):
    """pipelines/run.py's write stage over synthetic scan parts: a rerun with another config
    killed after clips leaves the first run's tables; finished, the second's."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench import driver_bench
    from curation.sources import VideoFile
    from pipelines.config import load_config
    from pipelines.run import run_table_stages, table_stage_run

    store = RunStore(str(tmp_path / "run"))
    jpeg = driver_bench._jpeg()
    for p in range(3):
        store.write_part(driver_bench.SCAN_KEY, driver_bench.part_tables(p, p * 4, 4, jpeg), part=f"part-{p:06d}")
    files = [VideoFile(u, u.split("bench-in/", 1)[1], 1) for u in (driver_bench._uri(i) for i in range(12))]
    cfgs = {}
    for balance in (False, True):
        f = tmp_path / f"cfg-{balance}.yaml"
        f.write_text(driver_bench.CONFIG.replace("balance: {enabled: true}", f"balance: {{enabled: {str(balance).lower()}}}"))
        cfgs[balance] = load_config(f)

    def tables() -> dict[str, list]:
        pinned = open_table_set(store.output_uri)
        return {n: sorted(pinned.read(n).column("clip_id").to_pylist()) for n in ("clips", "curated", "keyframes")}

    run_table_stages(table_stage_run(cfgs[False], store, files, driver_bench.SCAN_KEY))
    first, first_version = tables(), store.table_set()["version"]
    with monkeypatch.context() as mp:
        _kill_after_commit_of(mp, "clips")
        with pytest.raises(Killed):
            run_table_stages(table_stage_run(cfgs[True], store, files, driver_bench.SCAN_KEY))
    assert store.table_set()["version"] == first_version and tables() == first
    run_table_stages(table_stage_run(cfgs[True], store, files, driver_bench.SCAN_KEY))
    second = tables()
    assert store.table_set()["version"] != first_version
    assert set(second["curated"]) <= set(second["clips"]) and second["curated"] != first["curated"]
