"""A read that never returns becomes a `Timeout` error row; every other file is processed."""
import os
import shutil
import time

from pipelines.config import load_config
from pipelines.run import run_pipeline
from schemas import read_table


def test_hung_read_becomes_a_timeout_row(ray_local, test_videos, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for name in ("ok.mp4", "hang.mp4"):
        shutil.copy(test_videos / "realshort.mp4", inp / name)

    def turn_into_fifo(stage: str, moment: str) -> None:
        # listed as a regular file; by the time a worker opens it, opening blocks forever (a FIFO with no writer)
        if (stage, moment) == ("probe_split_score", "start"):
            (inp / "hang.mp4").unlink()
            os.mkfifo(inp / "hang.mp4")

    cfg = load_config(overrides={"stages": {"probe_split_score": {"timeout_floor_s": 10, "timeout_s_per_gb": 0}}})
    t = time.monotonic()
    record = run_pipeline(str(inp), str(out), cfg, log=lambda *_: None, on_stage=turn_into_fifo)
    assert time.monotonic() - t < 120
    errors = read_table(str(out / "errors"), "errors").to_pylist()
    assert record.status == "succeeded"
    assert record.counts["scan"]["timeouts"] == 1, (record.counts["scan"], errors)
    videos = read_table(str(out / "videos"), "videos")
    assert [os.path.basename(u) for u in videos.column("uri").to_pylist()] == ["ok.mp4"], errors
    assert [(os.path.basename(e["uri"]), e["stage"], e["error_type"]) for e in errors] == [("hang.mp4", "probe_split_score", "Timeout")]
