"""The GPU protocol (bench/gpu_bench.py): its CPU smoke runs the same code path as the GPU run, FLOPs come from
torch's FlopCounterMode, and without a CUDA device it says so in one line (exit 0, or 2 with --require-gpu)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import gpu_bench  # noqa: E402
from bench.__main__ import run_one  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One --device cpu --tiny run, FlopCounterMode wrapped so the test sees every total it counted."""
    counted = []

    class Recording(gpu_bench.FlopCounterMode):
        def __exit__(self, *exc):
            out = super().__exit__(*exc)
            counted.append(self.get_total_flops())
            return out

    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    mp = pytest.MonkeyPatch()
    mp.setattr(gpu_bench, "FlopCounterMode", Recording)
    threads = torch.get_num_threads()
    try:
        report = gpu_bench.main(["--device", "cpu", "--tiny", "--out", str(out)])
    finally:
        mp.undo()
    return report, json.loads(out.read_text()), counted, threads


def test_smoke_reports_every_phase_and_writes_the_json(smoke):
    report, written, _, threads = smoke
    assert written["summary"] == json.loads(json.dumps(report["summary"]))
    assert report["device"]["type"] == "cpu" and report["tiny"] is True
    assert set(report["phase_wall_s"]) == {"autoencoder_train", "encode", "dit_train", "caption"}
    a, d, e, c = (report[k] for k in ("autoencoder_train", "dit_train", "encode", "caption"))
    assert a["clips_per_s"] == pytest.approx(a["batch"] * a["steps_timed"] / a["seconds"])
    assert a["frames_per_s"] == pytest.approx(a["clips_per_s"] * a["window"][0])
    assert d["samples_per_s"] == pytest.approx(d["batch"] * d["steps_timed"] / d["seconds"])
    assert d["tokens_per_s"] == pytest.approx(d["samples_per_s"] * d["tokens_per_sample"])
    assert d["tokens_per_sample"] == 2 * 4 * 4  # latent (8, 2, 8, 8) in 1x2x2 patches
    # encode: a 5x32x32 window through the tiny 4x4x4 autoencoder is one (8, 2, 8, 8) latent
    assert e["latent"] == [8, 2, 8, 8]
    assert e["latents_per_s"] == pytest.approx(e["clips_per_call"] * e["calls_timed"] / e["seconds"])
    assert c["clips_per_s"] == pytest.approx(c["clips_per_call"] * c["calls_timed"] / c["seconds"])
    assert min(a["steps_timed"], d["steps_timed"], e["calls_timed"], c["calls_timed"]) >= 1
    assert [r["metric"] for r in report["summary"]][:3] == ["autoencoder train clips/s", "autoencoder train TFLOP/s",
                                                             "autoencoder train MFU (bf16)"]
    assert torch.get_num_threads() == threads  # the CPU run's one thread is put back


def test_flops_come_from_the_counter_forward_and_backward(smoke):
    report, _, counted, _ = smoke
    a, d = report["autoencoder_train"], report["dit_train"]
    assert counted == [a["flops_per_step"], d["flops_per_step"]]  # one counted step each, reported as counted
    assert a["flops_per_step"] > 0 and d["flops_per_step"] > 0
    assert "FlopCounterMode" in a["flop_source"] and "FlopCounterMode" in d["flop_source"]
    ops = a["flops_by_op"]
    # the backward pass was counted: a conv's backward costs about twice its forward (less for the first layer,
    # which needs no input gradient)
    assert 1.5 < ops["convolution_backward"] / ops["convolution"] <= 2.0
    assert sum(ops.values()) <= a["flops_per_step"]
    assert {"mm", "addmm"} & set(d["flops_by_op"])  # the DiT's linears
    for x in (a, d):
        assert x["tflops_per_s"] == pytest.approx(x["flops_per_step"] * x["steps_timed"] / x["seconds"] / 1e12)
        assert x["mfu"] is None and x["mfu_note"] == "n/a on CPU"


def test_bf16_peaks_by_device_name():
    peak = gpu_bench.peak_bf16_tflops
    assert peak("NVIDIA H100 80GB HBM3") == 989.0  # SXM
    assert peak("NVIDIA H100 PCIe") == 756.0
    assert peak("NVIDIA H200") == 989.0
    assert peak("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak("NVIDIA H100 NVL") is None
    assert peak("NVIDIA L4") is None


def test_no_cuda_device_is_one_line_exit_0_or_2(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = gpu_bench.main([])
    assert capsys.readouterr().out.strip() == "no CUDA device: the GPU protocol did not run"
    assert r["status"] == gpu_bench.NO_DEVICE
    assert gpu_bench.main(["--require-gpu"]) == 2


def test_no_device_through_the_bench_runner_and_as_a_script(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    entry = run_one("gpu", [], timeout=300)  # what `python -m bench gpu` does: a child process, exit 0
    assert entry["status"] == "ok", entry
    assert entry["result"]["status"] == gpu_bench.NO_DEVICE
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_bench", "--require-gpu"], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""), timeout=300)
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines()[-1] == gpu_bench.NO_DEVICE
