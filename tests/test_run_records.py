"""Run records of failed, interrupted and killed runs; the command line without secrets; the printed rules."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _videogen import write_video
from pipelines import run as run_module
from pipelines.config import load_config
from pipelines.run import run_pipeline
from pipelines.run_records import (REDACTED, FolderInUse, live_runs, mark_abandoned, process_gone, redact_argv,
                                   redact_uri, this_process, write_record)
from pipelines.store import RunStore
from schemas import RunRecord

REPO = Path(__file__).resolve().parents[1]


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]


def _wait_for(condition, timeout_s: float = 60, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        assert proc is None or proc.poll() is None, f"process ended first (rc {proc.poll()})"
        time.sleep(0.02)


def _running_record(out: Path) -> bool:
    try:
        return any(r["status"] == "running" for r in _records(out))
    except (OSError, ValueError):  # a record being renamed into place
        return False


def _boom(*args, **kwargs):
    raise RuntimeError("cluster exploded\nsecond line of detail")


def test_failed_run_has_a_failed_record_with_one_line_and_the_code_version(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    write_video(tmp_path / "in" / "a.mp4", seed=1, seconds=1)
    monkeypatch.setattr(run_module, "init_ray", _boom)  # the run fails after its record says running
    with pytest.raises(RuntimeError, match="cluster exploded"):
        run_pipeline(str(tmp_path / "in"), str(tmp_path / "out"), load_config(), log=lambda *_: None)
    [rec] = _records(tmp_path / "out")
    assert rec["status"] == "failed" and rec["finished_at"]
    assert rec["error"] == {"type": "RuntimeError", "message": "cluster exploded"}
    assert rec["project_version"] and rec["process"]["pid"] == os.getpid()
    assert rec["git_commit"] is None or len(rec["git_commit"]) == 40


def test_unreadable_input_gives_a_failed_record(tmp_path):
    from curation.sources import InputError

    with pytest.raises(InputError):
        run_pipeline(str(tmp_path / "missing"), str(tmp_path / "out"), load_config(), log=lambda *_: None)
    [rec] = _records(tmp_path / "out")
    assert rec["status"] == "failed" and rec["error"]["type"] == "InputError" and "missing" in rec["error"]["message"]


def test_recorded_command_line_and_uris_hold_no_secrets(tmp_path, monkeypatch):
    argv = ["vidcurate", "run", "s3://AKIAXYZ:hunter2@bucket/in", str(tmp_path / "out"),
            "--storage-option", "secret=hunter3", "--storage-option=key=hunter4", "--token", "hunter5",
            "--api-key=hunter6", "AWS_SECRET_ACCESS_KEY=hunter7", "https://h/x?X-Amz-Signature=hunter8&a=1",
            "--ray-address", "10.0.0.1:6379"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(run_module, "init_ray", _boom)
    (tmp_path / "in").mkdir()
    write_video(tmp_path / "in" / "a.mp4", seed=1, seconds=1)
    with pytest.raises(RuntimeError):
        run_pipeline(str(tmp_path / "in"), str(tmp_path / "out"), load_config(), log=lambda *_: None)
    text = (next((tmp_path / "out" / "runs").glob("*.json"))).read_text()
    assert "hunter" not in text and "AKIAXYZ" not in text
    rec = json.loads(text)
    assert rec["command_line"] == [
        "vidcurate", "run", f"s3://{REDACTED}@bucket/in", str(tmp_path / "out"),
        "--storage-option", f"secret={REDACTED}", f"--storage-option=key={REDACTED}", "--token", REDACTED,
        f"--api-key={REDACTED}", f"AWS_SECRET_ACCESS_KEY={REDACTED}", f"https://h/x?X-Amz-Signature={REDACTED}&a=1",
        "--ray-address", "10.0.0.1:6379"]
    assert redact_uri("s3://u:p@b/in") == f"s3://{REDACTED}@b/in"
    assert redact_argv(["--storage-opt", "endpoint_url=http://x"]) == ["--storage-opt", f"endpoint_url={REDACTED}"]


def test_printed_rules_and_record_reflect_a_user_override(tmp_path, monkeypatch):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("filters:\n  - {column: sharpness, min: 9, reason: blurry}\n  - {reason: dark, enabled: false}\n")
    lines = []
    monkeypatch.setattr(run_module, "init_ray", _boom)
    (tmp_path / "in").mkdir()
    with pytest.raises(RuntimeError):
        run_pipeline(str(tmp_path / "in"), str(tmp_path / "out"), load_config(cfg_path), log=lines.append)
    printed = "\n".join(lines).splitlines()
    blurry = [ln for ln in printed if ln.split()[:1] == ["blurry"]]
    assert blurry == [ln for ln in printed if "sharpness" in ln]  # the rule is printed once
    assert "sharpness < 9 fails" in blurry[0] and "your config; default was sharpness < 2.5" in blurry[0]
    assert any(ln.split()[:1] == ["static"] and "(default)" in ln for ln in printed)
    assert any("switched off by your config: dark" in ln for ln in printed)
    assert not any(ln.split()[:1] == ["dark"] for ln in printed)
    [rec] = _records(tmp_path / "out")
    rules = {r["reason"]: r for r in rec["config"]["filters"]}  # the record holds the effective (merged) rules
    assert rules["blurry"]["min"] == 9 and "dark" not in rules and "static" in rules


def _record(run_id: str, process: dict, heartbeat_at: str | None = None) -> RunRecord:
    return RunRecord(run_id=run_id, input_uri="in", output_uri="out", started_at="2026-01-01T00:00:00+00:00",
                     config={}, config_hash="h", versions={}, process=process, heartbeat_at=heartbeat_at)


def test_abandoned_records_are_marked_by_pid_here_and_by_heartbeat_elsewhere(tmp_path):
    import datetime as dt

    store = RunStore(str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    me = this_process()
    dead = dict(me, pid=child.pid, pid_start_ticks=None)
    try:
        from pipelines.run_records import _pid_state

        dead["pid_start_ticks"] = _pid_state(child.pid)[1]
        assert process_gone(dead) is False
    finally:
        child.kill()
        child.wait()
    now = dt.datetime.now(dt.timezone.utc)
    records = {
        "dead-here": _record("dead-here", dead),
        "alive-here": _record("alive-here", me),
        "pid-reused": _record("pid-reused", dict(me, pid_start_ticks=(me["pid_start_ticks"] or 0) + 1)),
        "stale-there": _record("stale-there", {"host": "other-host", "pid": 1}, (now - dt.timedelta(hours=2)).isoformat()),
        "fresh-there": _record("fresh-there", {"host": "other-host", "pid": 1}, now.isoformat()),
    }
    for rec in records.values():
        write_record(store, rec)
    marked = mark_abandoned(store, "new-run", stale_after_s=900, log=lambda *_: None)
    assert sorted(marked) == ["dead-here", "pid-reused", "stale-there"]
    assert "no heartbeat from host other-host" in marked["stale-there"] and f"pid {child.pid}" in marked["dead-here"]
    after = {r["run_id"]: r for r in _records(tmp_path)}
    assert after["dead-here"]["status"] == "interrupted" and after["dead-here"]["error"]["type"] == "ProcessGone"
    assert "found running by run new-run" in after["stale-there"]["error"]["message"]
    assert after["alive-here"]["status"] == after["fresh-there"]["status"] == "running"
    assert sorted(r.run_id for r in live_runs(store, "new-run", stale_after_s=900)) == ["alive-here", "fresh-there"]


def _dead_pid() -> dict:
    """This host's process record of a process that has ended."""
    from pipelines.run_records import _pid_state

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = dict(this_process(), pid=child.pid, pid_start_ticks=_pid_state(child.pid)[1])
    child.kill()
    child.wait()
    return dead


def test_stale_leases_are_taken_over_and_the_takeover_recorded(tmp_path, monkeypatch):
    import datetime as dt

    out = tmp_path / "out"
    store = RunStore(str(out))
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1000)).isoformat()
    (tmp_path / "in").mkdir()
    write_record(store, _record("dead-pid-here", _dead_pid(), dt.datetime.now(dt.timezone.utc).isoformat()))
    write_record(store, _record("old-heartbeat-there", {"host": "other-host", "pid": 7}, old))
    monkeypatch.setattr(run_module, "init_ray", _boom)  # the run only needs to get past its lease
    with pytest.raises(RuntimeError, match="cluster exploded"):
        run_pipeline(str(tmp_path / "in"), str(out), load_config(), log=lambda *_: None)
    by_id = {r["run_id"]: r for r in _records(out)}
    [new] = [r for r in by_id.values() if r["run_id"] not in ("dead-pid-here", "old-heartbeat-there")]
    assert by_id["dead-pid-here"]["status"] == by_id["old-heartbeat-there"]["status"] == "interrupted"
    took = [n for n in new["notes"] if n.startswith("took the output folder over")]
    assert len(took) == 2
    assert any("dead-pid-here" in n and "is gone" in n for n in took)
    assert any("old-heartbeat-there" in n and "no heartbeat from host other-host for 100" in n for n in took)


def test_a_live_lease_elsewhere_refuses_the_run_and_leaves_no_record(tmp_path):
    import datetime as dt

    out = tmp_path / "out"
    store = RunStore(str(out))
    write_record(store, _record("live-there", {"host": "other-host", "pid": 4242},
                                dt.datetime.now(dt.timezone.utc).isoformat()))
    with pytest.raises(FolderInUse) as e:
        run_pipeline(str(tmp_path), str(out), load_config(), log=lambda *_: None)
    message = str(e.value)
    assert "\n" not in message and "run live-there" in message and "host other-host" in message and "pid 4242" in message
    assert [r["run_id"] for r in _records(out)] == ["live-there"]


def _cli(inp: Path, out: Path, log: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log, "w") as f:  # own session, as tests/test_reliability.py's Attempt: a kill takes the group
        return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(inp), str(out), *extra],
                                cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory) -> Path:
    inp = tmp_path_factory.mktemp("rr") / "in"
    for i in range(2):
        write_video(inp / f"v{i}.mp4", seed=500 + i, seconds=2)
    return inp


def test_sigkilled_run_is_marked_interrupted_by_the_next_run(two_videos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    proc = _cli(two_videos, out, tmp_path / "killed.log")  # killed before it starts Ray (its record is written first)
    _wait_for(lambda: _running_record(out), proc=proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    [killed] = _records(out)
    assert killed["status"] == "running"  # nobody could write its ending
    notes = []
    monkeypatch.setattr(run_module, "init_ray", _boom)  # the next run only needs to start: it checks old records first
    with pytest.raises(RuntimeError):
        run_pipeline(str(two_videos), str(out), load_config(), log=notes.append)
    by_id = {r["run_id"]: r for r in _records(out)}
    assert len(by_id) == 2 and by_id[killed["run_id"]]["status"] == "interrupted"
    assert by_id[killed["run_id"]]["error"]["type"] == "ProcessGone"
    assert f"pid {killed['process']['pid']}" in by_id[killed["run_id"]]["error"]["message"]
    assert any(killed["run_id"] in n and "interrupted" in n for n in notes)


def test_a_second_run_on_a_live_folder_exits_2_in_one_line_naming_the_first(two_videos, tmp_path):
    out = tmp_path / "out"
    first = _cli(two_videos, out, tmp_path / "first.log")
    try:
        _wait_for(lambda: _running_record(out), proc=first)
        os.killpg(first.pid, signal.SIGSTOP)  # alive but going nowhere: the folder stays leased while we look
        [held] = _records(out)
        second = subprocess.run([str(REPO / ".venv" / "bin" / "vidcurate"), "run", str(two_videos), str(out)],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert second.returncode == 2, second.stderr
    [line] = second.stderr.strip().splitlines()
    p = held["process"]
    assert line.startswith("vidcurate: error: ") and f"run {held['run_id']}" in line
    assert f"host {p['host']}" in line and f"pid {p['pid']}" in line
    assert [r["run_id"] for r in _records(out)] == [held["run_id"]]  # the refused run left no record


def test_sigterm_gives_an_interrupted_record_and_exit_143(two_videos, ray_local, tmp_path):
    out = tmp_path / "out"
    address = ray_local.get_runtime_context().gcs_address
    proc = _cli(two_videos, out, tmp_path / "term.log", "--ray-address", address)
    log_path = tmp_path / "term.log"
    # once the scan has started: Ray is joined and the run's own handler is back (a SIGTERM inside ray.init
    # is a narrower window, not what this test is about)
    _wait_for(lambda: _running_record(out) and "scan:" in log_path.read_text(), timeout_s=120, proc=proc)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=120)
    log = log_path.read_text()
    assert rc == 128 + signal.SIGTERM, log[-2000:]
    [rec] = _records(out)
    assert rec["status"] == "interrupted", log[-2000:]
    assert rec["error"] == {"type": "RunInterrupted", "message": "SIGTERM"}
    assert "vidcurate: interrupted" in log and "Traceback" not in log
