"""Kill `vidcurate run` with SIGKILL at many moments; the resumed run must equal an uninterrupted one.

Each attempt is `python -m pipelines.cli run IN OUT` in its own session (process
group). One attempt starts its own local Ray cluster, so killing its group
must take the whole cluster down with it (checked); later attempts join the
session cluster with --ray-address, whose workers for a dead driver's job Ray
reaps itself. Kill moments are read off the run folder (committed parts, final
table files), not off the clock.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _videogen import write_video
from pipelines.config import load_config
from pipelines.run import run_pipeline
from schemas import read_table

REPO = Path(__file__).resolve().parents[1]
N_VIDEOS = 10
FINAL = ("videos", "clips", "curated", "errors")
VOLATILE = {"videos": ["decode_s"], "errors": ["run_id"]}  # wall time, and the id of the run that wrote the row


def _committed(out: Path) -> int:
    return len(list(out.glob("_work/scan-*/part-*/_COMMITTED")))


def _table_rows(out: Path, name: str) -> list[dict]:
    t = read_table(str(out / name), name)
    t = t.drop_columns([c for c in VOLATILE.get(name, []) if c in t.column_names])
    rows = t.to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def _group_pids(pgid: int) -> set[tuple[int, int | None]]:
    """(pid, start time) of the processes in a process group and of every descendant (Ray daemons may change groups)."""
    procs = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                procs[int(d.name)] = (int(fields[1]), int(fields[2]))  # ppid, pgrp
            except (OSError, IndexError, ValueError):
                continue
    members = {p for p, (_, g) in procs.items() if g == pgid}
    grew = True
    while grew:
        kids = {p for p, (pp, _) in procs.items() if pp in members} - members
        members |= kids
        grew = bool(kids)
    return {(p, _start_time(p)) for p in members}


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process (pids get reused)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(proc: tuple[int, int | None]) -> bool:
    pid, started = proc
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == started


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


class Attempt:
    """One `vidcurate run` in its own process group, output to a log file."""

    def __init__(self, inp: Path, out: Path, cfg: Path, log: Path, address: str | None):
        cmd = [sys.executable, "-m", "pipelines.cli", "run", str(inp), str(out), "--config", str(cfg)]
        if address:
            cmd += ["--ray-address", address]
        self.log = log
        with open(log, "w") as f:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_when(self, condition, poll_s: float = 0.02) -> bool:
        """SIGKILL the process group once `condition()` holds; False when the run ended first."""
        while self.proc.poll() is None:
            if condition():
                pids = _group_pids(self.proc.pid)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self.killed_group = pids
                return True
            time.sleep(poll_s)
        return False

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        rc = self.proc.wait(timeout=timeout)
        return rc, self.log.read_text()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    inp = root / "in"
    for i in range(N_VIDEOS):
        write_video(inp / f"clip_{i:02d}.mp4", seed=200 + i)
    (inp / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)  # an error row too
    cfg = root / "small_parts.yaml"
    cfg.write_text("output:\n  videos_per_part: 1\nray:\n  num_cpus: 1\n")
    return root, inp, cfg


@pytest.fixture(scope="module")
def baseline(corpus, ray_local):
    root, inp, cfg = corpus
    out = root / "baseline"
    record = run_pipeline(str(inp), str(out), load_config(cfg), log=lambda *_: None)
    assert record.status == "succeeded"
    return out


def _visible_parquet_is_whole(out: Path) -> None:
    """What a reader lists in the final folders parses as Parquet (hidden temp files are not listed)."""
    for name in FINAL:
        folder = out / name
        if folder.exists():
            for f in folder.iterdir():
                if not f.name.startswith((".", "_")):
                    pq.read_metadata(f)  # raises on a partial file
            read_table(str(folder), name)


@pytest.mark.slow
def test_sigkill_at_many_moments_then_resume_equals_uninterrupted(corpus, baseline, ray_local, tmp_path):
    root, inp, cfg = corpus
    out = tmp_path / "out"
    address = ray_local.get_runtime_context().gcs_address
    rng = random.Random(8)
    def after_parts(k):  # k more committed parts than when the attempt started
        def make():
            target = _committed(out) + k
            return lambda: _committed(out) >= target
        return make

    def after_delay():  # a seeded random moment, whatever the run is doing then
        def make():
            t_kill = time.monotonic() + rng.uniform(2, 4)
            return lambda: time.monotonic() >= t_kill
        return make

    moments = [
        # (name, own local cluster?, () -> condition on the run folder, built when the attempt starts)
        ("just started: output folder created", False, lambda: lambda: out.exists()),
        ("own local cluster, scanning: after a committed part", True, after_parts(1)),
        ("two parts later", False, after_parts(2)),
        ("at a random delay", False, after_delay()),
        ("all parts committed: assembling", False, lambda: lambda: _committed(out) >= N_VIDEOS + 1),
        ("writing the final tables", False, lambda: lambda: (out / "videos").exists() and any((out / "videos").iterdir())),
    ]
    killed = []
    for i, (name, own_cluster, make_condition) in enumerate(moments):
        before = _committed(out)
        cond = make_condition()
        a = Attempt(inp, out, cfg, tmp_path / f"attempt{i}.log", None if own_cluster else address)
        if a.kill_when(cond):
            killed.append((name, before, _committed(out)))
            if own_cluster:
                # the driver's own Ray cluster (GCS, raylet, workers) went down with the group. A worker
                # outside the killed group exits once it finds the GCS gone; Ray waits up to
                # gcs_rpc_server_reconnect_timeout_s (60 s by default) before giving up, so allow that
                # plus slack for a loaded CI box
                deadline = time.monotonic() + 180
                while any(_alive(p) for p in a.killed_group) and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert len(a.killed_group) > 3, "expected the driver's GCS, raylet and workers in its group"
                survivors = {p: _cmdline(p) for p, started in a.killed_group if _alive((p, started))}
                assert not survivors, f"Ray processes outlived the killed driver: {survivors}"
        else:
            rc, log = a.finish()
            assert rc == 0, log[-3000:]
        _visible_parquet_is_whole(out)
    print("kills:", *killed, sep="\n  ")
    assert len(killed) >= 5, killed

    rc, log = Attempt(inp, out, cfg, tmp_path / "final.log", address).finish()
    assert rc == 0, log[-3000:]
    for name in FINAL:
        got, want = _table_rows(out, name), _table_rows(baseline, name)
        assert got == want, f"{name} differs from the uninterrupted run after kills {killed}"
    clip_ids = [r["clip_id"] for r in _table_rows(out, "clips")]
    assert len(clip_ids) == len(set(clip_ids)) > N_VIDEOS
    _visible_parquet_is_whole(out)
    for name in FINAL:
        assert not [f.name for f in (out / name).iterdir() if f.name.startswith(".tmp")], f"temp files left in {name}/"


def test_incremental_run_scans_only_new_files_and_finished_run_does_nothing(corpus, ray_local, tmp_path):
    _, _, cfg_path = corpus
    address = ray_local.get_runtime_context().gcs_address
    # the same config the CLI builds from --ray-address: pipelines/run.py's "nothing to do"
    # fingerprint hashes the whole config, ray.address included
    cfg = load_config(cfg_path, {"ray": {"address": address}})
    inp = tmp_path / "in"
    for i in range(3):
        write_video(inp / f"first_{i}.mp4", seed=300 + i)
    out = tmp_path / "out"
    first = run_pipeline(str(inp), str(out), cfg, log=lambda *_: None)
    assert first.counts["scan"]["scanned"] == 3
    before = {r["video_id"]: r for r in _table_rows(out, "videos")}

    for i in range(2):
        write_video(inp / f"new_{i}.mp4", seed=400 + i)
    second = run_pipeline(str(inp), str(out), cfg, log=lambda *_: None)
    assert second.counts["scan"]["scanned"] == 2 and second.counts["scan"]["already_done"] == 3
    on_disk = json.loads((out / "runs" / f"{second.run_id}.json").read_text())
    assert on_disk["counts"]["scan"]["scanned"] == 2
    after = {r["video_id"]: r for r in _table_rows(out, "videos")}
    assert len(after) == 5 and all(after[k] == v for k, v in before.items())

    rc, log = Attempt(inp, out, cfg_path, tmp_path / "third.log", address).finish()
    assert rc == 0, log[-3000:]
    assert "nothing to do" in log
    assert len(list((out / "runs").glob("*.json"))) == 2  # a run that did nothing writes no tables and no record


def test_uncommitted_part_is_discarded_on_resume(corpus, ray_local, tmp_path):
    """A part folder without its _COMMITTED marker (a run killed mid-write) is neither read nor kept."""
    _, _, cfg = corpus
    inp = tmp_path / "in"
    write_video(inp / "a.mp4", seed=500)
    write_video(inp / "b.mp4", seed=501)
    out = tmp_path / "out"
    run_pipeline(str(inp), str(out), load_config(cfg), log=lambda *_: None)
    parts = sorted(out.glob("_work/scan-*/part-*"))
    assert len(parts) == 2
    # forge a killed writer's leftovers: a copy of a part without its marker, and a hidden temp file
    ghost = parts[0].parent / "part-ghost0000000"
    ghost.mkdir()
    for f in parts[0].iterdir():
        if f.name != "_COMMITTED":
            (ghost / f.name).write_bytes(f.read_bytes())
    (ghost / ".tmp-deadbeef-clips.parquet").write_bytes(b"PAR1 half written")
    write_video(inp / "c.mp4", seed=502)  # a new input forces a new scan
    record = run_pipeline(str(inp), str(out), load_config(cfg), log=lambda *_: None)
    assert record.counts["scan"]["scanned"] == 1
    assert not ghost.exists()
    videos = read_table(str(out / "videos"), "videos")
    assert sorted(videos.column("relpath").to_pylist()) == ["a.mp4", "b.mp4", "c.mp4"]


def _errors_table(n, label):
    from schemas import TABLES, table_from_rows

    rows = [{"uri": f"file{i}", "video_id": None, "stage": "decode", "error_type": "X", "message": label, "run_id": label}
            for i in range(n)]
    return table_from_rows(rows, TABLES["errors"], "errors")


def test_replacing_a_table_killed_before_cleanup_never_shows_two_versions(tmp_path, monkeypatch):
    """A kill right after a new file is in place, before the manifest: readers see the old table, whole."""
    from pipelines.store import RunStore

    store = RunStore(str(tmp_path / "out"))
    store.replace_table("errors", _errors_table(3, "old"), tag="aaaa1111")
    old_files = list((tmp_path / "out" / "errors").glob("*.parquet"))

    real_mv = store.fs.mv  # write_table gets the same cached LocalFileSystem instance

    def mv_then_die(*a, **k):
        real_mv(*a, **k)  # the new file is in place...
        raise KeyboardInterrupt("...and the run is killed before the manifest is replaced")

    monkeypatch.setattr(store.fs, "mv", mv_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.replace_table("errors", _errors_table(2, "new"), tag="bbbb2222")
    seen = read_table(str(tmp_path / "out" / "errors"), "errors")
    assert seen.column("message").to_pylist() == ["old"] * 3
    monkeypatch.undo()
    killed = set((tmp_path / "out" / "errors").glob("*.parquet")) - set(old_files)
    store.replace_table("errors", _errors_table(2, "new"))  # the next run: the new set, the killed writer's file gone
    assert read_table(str(tmp_path / "out" / "errors"), "errors").column("message").to_pylist() == ["new"] * 2
    left = set((tmp_path / "out" / "errors").glob("*.parquet"))
    assert len(killed) == 1 and not killed & left
    assert len(left) == 2 and set(old_files) < left  # the replaced set's file stays until the next commit


@pytest.mark.parametrize("legacy", [False, True])
def test_table_set_killed_between_files_reads_as_the_old_set(tmp_path, monkeypatch, legacy):
    """A many-file table: a writer killed after some of its files leaves readers the old complete set,
    also when the old set was written before manifests existed (a folder of part-NNNNN files)."""
    from pipelines.store import RunStore
    from schemas import write_table

    store = RunStore(str(tmp_path / "out"))
    folder = tmp_path / "out" / "errors"
    if legacy:
        for i in range(3):
            write_table(_errors_table(2, "old"), "errors", str(folder / f"part-{i:05d}.parquet"))
    else:
        store.replace_table("errors", _errors_table(6, "old"), rows_per_file=2)
    assert len(list(folder.glob("*.parquet"))) == 3
    real_mv, moved = store.fs.mv, []

    def die_on_third_file(src, dst, *a, **k):
        if dst.endswith(".parquet"):
            moved.append(dst)
            if len(moved) == 3:
                raise KeyboardInterrupt("killed between files")
        return real_mv(src, dst, *a, **k)

    monkeypatch.setattr(store.fs, "mv", die_on_third_file)
    with pytest.raises(KeyboardInterrupt):
        store.replace_table("errors", _errors_table(10, "new"), rows_per_file=2)
    visible = [f for f in folder.glob("*.parquet") if not f.name.startswith(".")]
    assert len(visible) == 5  # two new files lie next to the old three (the third is still a hidden temp file)
    seen = read_table(str(folder), "errors")
    assert seen.column("message").to_pylist() == ["old"] * 6


def test_failed_task_is_retried_next_run_and_its_error_row_retired(ray_local, tmp_path):
    """A task that died (worker crash, lost node) marks nothing done: the next run rescans the file,
    and the failure row goes away once the file has a real result."""
    from curation.scan import ScanResult, error_row
    from curation.sources import list_videos
    from pipelines.params import scan_params
    from pipelines.scan_stage import commit_results, done_uris, run_scan_stage
    from pipelines.store import RunStore

    inp = tmp_path / "in"
    write_video(inp / "ok.mp4", seed=700)
    write_video(inp / "crashed.mp4", seed=701)
    files, _ = list_videos(str(inp), [".mp4"])
    crashed = next(f for f in files if f.relpath == "crashed.mp4")
    cfg = load_config()
    store = RunStore(str(tmp_path / "out"))
    # an earlier run: ok.mp4 scanned, crashed.mp4's task died after its retries
    run_scan_stage([f for f in files if f is not crashed], store, "scan-x", scan_params(cfg), cfg.stages["probe_split_score"],
                   "run1", {}, 1, 2)
    commit_results(store, "scan-x", [ScanResult(errors=[error_row(crashed.uri, None, "scan", "WorkerCrashedError", "worker died", "run1")])])
    assert crashed.uri not in done_uris(store, "scan-x").to_pylist()

    stats = run_scan_stage(files, store, "scan-x", scan_params(cfg), cfg.stages["probe_split_score"], "run2", {}, 1, 2)
    assert stats["scanned"] == 1 and stats["already_done"] == 1 and stats["task_failures_retired"] == 1
    videos = store.read_parts("scan-x", "videos")
    errors = store.read_parts("scan-x", "errors")
    assert sorted(videos.column("relpath").to_pylist()) == ["crashed.mp4", "ok.mp4"]
    assert errors.num_rows == 0
