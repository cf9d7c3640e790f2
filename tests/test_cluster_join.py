"""Joining an existing Ray cluster: a token-authenticated `ray start --head`, an unreachable address, `auto`.

The head is started by this module as `ray start --head --block` in its own
session and stopped by its PID (never `ray stop`, which would stop every
cluster on the machine).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**over) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = str(REPO)
    env.update(over)
    return env


def _cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)


def _job_server_available() -> bool:
    """`ray job submit` talks to the dashboard's job server, which needs ray[default] (aiohttp_cors, ...)."""
    try:
        import aiohttp_cors  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A one-CPU head with Ray 2.60's default token authentication; yields its GCS address."""
    port = _free_port()
    log = tmp_path_factory.mktemp("head") / "head.log"
    # the job agent's HTTP port too: another Ray on this machine (the session's local cluster) may hold the default
    dashboard = (["--dashboard-host=127.0.0.1", f"--dashboard-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}"]
                 if _job_server_available() else ["--include-dashboard=false"])
    with open(log, "w") as f:
        proc = subprocess.Popen([str(RAY), "start", "--head", f"--port={port}", "--num-cpus=1", "--disable-usage-stats",
                                 *dashboard, "--block"], stdout=f, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        dash = next((a.split("=")[1] for a in dashboard if a.startswith("--dashboard-port")), None)
        yield {"address": f"127.0.0.1:{port}", "dashboard": dash and f"http://127.0.0.1:{dash}"}
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only this head's processes
            proc.wait(10)


@pytest.fixture(scope="module")
def one_video(tmp_path_factory, test_videos):
    inp = tmp_path_factory.mktemp("join") / "in"
    inp.mkdir()
    shutil.copy(test_videos / "realshort.mp4", inp / "realshort.mp4")
    return inp


def test_unreachable_address_fails_fast_with_one_line(tmp_path, test_videos):
    t = time.monotonic()
    r = _cli("run", str(test_videos), str(tmp_path / "out"), "--ray-address", f"127.0.0.1:{_free_port()}")
    elapsed = time.monotonic() - t
    assert r.returncode == 2, r.stderr[-2000:]
    assert elapsed < 30, elapsed
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vidcurate: error: cannot reach a Ray cluster"), r.stderr[-2000:]


def test_auto_names_where_it_found_the_cluster(monkeypatch):
    from pipelines.ray_runtime import resolve_address

    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert resolve_address("auto") == ("10.1.2.3:6379", "auto: RAY_ADDRESS")
    assert resolve_address("10.9.9.9:6379") == ("10.9.9.9:6379", "given")


@pytest.mark.slow
def test_join_token_head_by_address(head, one_video, tmp_path):
    """No RAY_AUTH_MODE in the environment: the token `ray start` wrote is found and used."""
    out = tmp_path / "out"
    r = _cli("run", str(one_video), str(out), "--ray-address", head["address"])
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    cluster = record["cluster"]
    assert cluster["how"] == "given" and cluster["address"].endswith(head["address"].split(":")[1])
    assert cluster["nodes"] == 1 and cluster["cpus"] == 1 and cluster["cluster_id"] and cluster["job_id"]
    assert record["counts"]["videos"] == 1

    # told not to use a token, the same head refuses us: one line naming the fix, exit 2
    r = _cli("run", str(one_video), str(tmp_path / "out2"), "--ray-address", head["address"], env=_env(RAY_AUTH_MODE="disabled"))
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("vidcurate:")]
    assert r.returncode == 2 and len(lines) == 1 and "token" in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not _job_server_available(), reason="`ray job submit` needs ray[default] (the dashboard's job server)")
def test_ray_job_submit_with_runtime_env(head, one_video, tmp_path):
    out = tmp_path / "out"
    runtime_env = json.dumps({"env_vars": {"PYTHONPATH": str(REPO)}})
    submit = [str(RAY), "job", "submit", "--address", head["dashboard"], "--runtime-env-json", runtime_env, "--",
              sys.executable, "-m", "pipelines.cli", "run", str(one_video), str(out), "--ray-address", "auto"]
    deadline = time.monotonic() + 180
    while True:  # the head's job agent comes up some seconds after "Ray runtime started"; Ray says to retry
        r = subprocess.run(submit, cwd=REPO, env=_env(RAY_AUTH_MODE="token"), capture_output=True, text=True, timeout=600)
        if "No available agent to submit job" not in r.stderr or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert record["cluster"]["how"] == "auto: RAY_ADDRESS" and record["counts"]["videos"] == 1
