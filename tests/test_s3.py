"""Object storage end to end: input and output on s3:// (moto's server on loopback), credentials never leak.

The driver is `python -m pipelines.cli run` in a subprocess joined to the session
Ray cluster, so its stdout/stderr (with the workers' forwarded logs) can be
searched for the credentials along with the run record, the tables and every
object the run wrote.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _videogen import write_video

REPO = Path(__file__).resolve().parents[1]
KEY = "AKIAVIDCURATETESTKEY7"
SECRET = "s3cr3t+Vidcurate/SessionOnly-9f2b"
BUCKET = "curation"


@pytest.fixture(scope="module")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _options(endpoint: str) -> dict:
    return {"key": KEY, "secret": SECRET, "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}


def _fs(endpoint: str):
    import s3fs

    # a fresh instance each time: no listing cached from before the run
    return s3fs.S3FileSystem(skip_instance_cache=True, **_options(endpoint))


@pytest.fixture(scope="module")
def s3_run(moto_server, ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s3")
    import boto3

    boto3.client("s3", endpoint_url=moto_server, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)
    fs = _fs(moto_server)
    names = []
    for i in range(3):
        local = write_video(tmp / f"v{i}.mp4", seed=100 + i)
        fs.put_file(str(local), f"{BUCKET}/in/sub dir/v{i}.mp4" if i == 2 else f"{BUCKET}/in/v{i}.mp4")
        names.append(local.name)
    fs.pipe_file(f"{BUCKET}/in/notes.mp4", b"not a video at all\n" * 10)
    cfg = tmp / "s3.yaml"
    cfg.write_text(json.dumps({  # JSON is YAML
        "input": {"storage_options": _options(moto_server)},
        "output": {"storage_options": _options(moto_server), "videos_per_part": 2},
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # only the config's credentials
    address = ray_local.get_runtime_context().gcs_address
    r = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", f"s3://{BUCKET}/in", f"s3://{BUCKET}/out", "--config", str(cfg),
         "--ray-address", address],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )
    return r, fs


def _read(endpoint: str, name: str):
    from schemas import read_table

    return read_table(f"s3://{BUCKET}/out/{name}", name, _options(endpoint))


def test_s3_run_writes_readable_tables(s3_run, moto_server):
    r, _ = s3_run
    assert r.returncode == 0, r.stderr[-3000:]
    videos, clips, errors = (_read(moto_server, n) for n in ("videos", "clips", "errors"))
    uris = set(videos.column("uri").to_pylist())
    assert uris == {f"s3://{BUCKET}/in/v0.mp4", f"s3://{BUCKET}/in/v1.mp4", f"s3://{BUCKET}/in/sub dir/v2.mp4"}
    assert set(errors.column("uri").to_pylist()) == {f"s3://{BUCKET}/in/notes.mp4"}
    assert clips.num_rows >= 3 and set(clips.column("uri").to_pylist()) == uris
    assert len(set(clips.column("clip_id").to_pylist())) == clips.num_rows
    curated = _read(moto_server, "curated")
    assert set(curated.column("clip_id").to_pylist()) <= set(clips.column("clip_id").to_pylist())


def test_s3_rerun_resumes_from_object_storage(s3_run, moto_server, ray_local, tmp_path):
    """A second run finds the committed parts on S3 and has nothing to do."""
    r, fs = s3_run
    assert r.returncode == 0
    parts = [p for p in fs.find(f"{BUCKET}/out/_work") if p.endswith("_COMMITTED") and "/_work/scan-" in p]
    assert len(parts) == 2  # 4 files, 2 per part (other stages, e.g. text, commit parts of their own)
    cfg = tmp_path / "s3.yaml"
    cfg.write_text(json.dumps({"input": {"storage_options": _options(moto_server)},
                               "output": {"storage_options": _options(moto_server), "videos_per_part": 2}}))
    again = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", f"s3://{BUCKET}/in", f"s3://{BUCKET}/out", "--config", str(cfg),
         "--ray-address", ray_local.get_runtime_context().gcs_address],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to do" in again.stdout
    assert SECRET not in again.stdout + again.stderr and KEY not in again.stdout + again.stderr


def test_credentials_appear_nowhere(s3_run, moto_server, ray_local):
    r, fs = s3_run
    assert r.returncode == 0
    assert "videos" in r.stdout  # the summary was printed: there is output to search
    for secret in (KEY, SECRET):
        assert secret not in r.stdout and secret not in r.stderr
    # every object the run wrote: run record, work parts, final tables, markers
    objects = fs.find(f"{BUCKET}/out")
    assert any(p.startswith(f"{BUCKET}/out/runs/") for p in objects)
    for p in objects:
        data = fs.cat_file(p)
        assert KEY.encode() not in data and SECRET.encode() not in data, p
    record = json.loads(fs.cat_file(next(p for p in objects if p.startswith(f"{BUCKET}/out/runs/"))))
    assert record["config"]["input"]["storage_options"]["secret"] == "***"
    errors = _read(moto_server, "errors")
    for message in errors.column("message").to_pylist():
        assert KEY not in message and SECRET not in message
    # the session cluster's own log files (workers ran the scan tasks with the options)
    from ray._private.worker import _global_node

    logs = Path(_global_node.get_logs_dir_path())
    for f in logs.glob("*"):
        if f.is_file() and f.stat().st_size < 50 << 20:
            text = f.read_bytes()
            assert KEY.encode() not in text and SECRET.encode() not in text, f


def test_missing_bucket_fails_fast_without_leaking_credentials(moto_server):
    from curation.sources import InputError, list_videos
    from pipelines.store import OutputError, RunStore

    with pytest.raises(OutputError) as out_err:
        RunStore("s3://no-such-bucket/out", _options(moto_server)).check_writable()
    with pytest.raises(InputError) as in_err:
        list_videos("s3://no-such-bucket/in", [".mp4"], _options(moto_server))
    for e in (out_err.value, in_err.value):
        text = str(e)
        assert "no-such-bucket" in text and "\n" not in text
        assert KEY not in text and SECRET not in text
