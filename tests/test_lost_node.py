"""A worker node dies mid-run: its scan tasks are retried elsewhere and every clip appears exactly once.

The cluster (a head with no CPUs and two one-CPU worker nodes, from
ray.cluster_utils.Cluster) lives in a child process running this file as a
script: a test process can be connected to one Ray cluster only, and the
session's `ray_local` cluster must stay untouched. The child prints a JSON
report; the test checks it.
"""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

N_VIDEOS = 8


def _committed(out: Path) -> int:
    return len(list(out.glob("_work/scan-*/part-*/_COMMITTED")))


def _scan_workers(raylet_pid: int) -> list[int]:
    """Pids of processes under a node's raylet that run a scan task (Ray titles them ray::_scan_task)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            title = (d / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == raylet_pid and b"_scan_task" in title:
            found.append(int(d.name))
    return found


def _main(inp: str, work: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from pipelines.config import load_config
    from pipelines.run import run_pipeline
    from schemas import read_table

    mem = 100 << 20
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": mem})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=mem) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING")
    report = {}
    try:
        cfg = load_config(overrides={"output": {"videos_per_part": 1},
                                     "stages": {"probe_split_score": {"max_retries": 3}}})
        normal = Path(work) / "normal"
        run_pipeline(inp, str(normal), cfg, log=lambda *_: None)

        out = Path(work) / "lost"
        result = {}
        thread = threading.Thread(target=lambda: result.update(record=run_pipeline(inp, str(out), cfg, log=lambda *_: None)))
        thread.start()
        victim = workers[1]
        raylet = victim.all_processes["raylet"][0].process.pid
        busy = []
        while thread.is_alive() and not busy:  # wait until a scan task runs on the victim node
            busy = _scan_workers(raylet)
            time.sleep(0.05)
        report["killed_while_running"] = busy
        report["committed_at_kill"] = _committed(out)
        cluster.remove_node(victim, allow_graceful=False)
        thread.join()
        report["status"] = result["record"].status
        for name, path in (("normal", normal), ("lost", out)):
            clips = read_table(str(path / "clips"), "clips")
            report[name] = {
                "clip_ids": clips.column("clip_id").to_pylist(),
                "videos": read_table(str(path / "videos"), "videos").column("uri").to_pylist(),
                "errors": read_table(str(path / "errors"), "errors").select(["uri", "stage", "error_type"]).to_pylist(),
                "motion": clips.column("motion").to_pylist(),
            }
        # the GCS marks a node dead after its health checks fail, which may come after the run
        deadline = time.monotonic() + 120
        while sum(1 for n in ray.nodes() if n["Alive"]) > 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        report["alive_nodes"] = sum(1 for n in ray.nodes() if n["Alive"])
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("REPORT " + json.dumps(report))


@pytest.mark.slow
def test_lost_worker_node_mid_run(tmp_path):
    from _videogen import write_video

    inp = tmp_path / "in"
    for i in range(N_VIDEOS):
        write_video(inp / f"v{i}.mp4", seed=600 + i, seconds=4)  # long enough that tasks are in flight at the kill
    r = subprocess.run([sys.executable, __file__, str(inp), str(tmp_path)], capture_output=True, text=True, timeout=500)
    lines = [line for line in r.stdout.splitlines() if line.startswith("REPORT ")]
    assert r.returncode == 0 and lines, (r.stdout[-2000:], r.stderr[-4000:])
    rep = json.loads(lines[-1][len("REPORT "):])
    print({k: rep[k] for k in ("killed_while_running", "committed_at_kill", "status", "alive_nodes")}, len(rep["lost"]["clip_ids"]), "clips")
    assert rep["killed_while_running"], "no scan task was running on the node when it was removed"
    assert rep["committed_at_kill"] < N_VIDEOS, "the node was removed after the scan had finished"
    assert rep["status"] == "succeeded" and rep["alive_nodes"] == 2  # head + the surviving worker
    normal, lost = rep["normal"], rep["lost"]
    assert len(normal["clip_ids"]) >= N_VIDEOS and len(set(normal["clip_ids"])) == len(normal["clip_ids"])
    assert sorted(lost["clip_ids"]) == sorted(normal["clip_ids"])  # every clip, exactly once
    assert sorted(lost["videos"]) == sorted(normal["videos"]) and len(lost["videos"]) == N_VIDEOS
    assert lost["errors"] == [] == normal["errors"]  # the retries succeeded: no task-failure rows
    assert sorted(zip(lost["clip_ids"], lost["motion"])) == sorted(zip(normal["clip_ids"], normal["motion"]))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
