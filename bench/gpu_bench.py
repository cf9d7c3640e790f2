"""The GPU protocol (issue 23, item 4): one script, at most 8 minutes on one H100-class GPU.

Measures, each phase under its own time budget:
  - autoencoder training: the causal video VAE (training/autoencoder, ModelConfig (128, 256, 512, 512), c16,
    4x8x8) on 9x256x256 windows through the trainer's own `train_step` (bf16 autocast): clips/s, TFLOP/s, MFU;
  - DiT training: the spatiotemporal DiT (training/diffusion, size B, patch 2) on the latents of 17x256x256
    clips, the trainer's step (EDM loss, AdamW, grad clip, EMA): samples/s, tokens/s, TFLOP/s, MFU;
  - encode: `encode_windows` (the encoder's production path: host clips -> device -> bf16 -> float32 latents on
    the host) on 17x256x256 windows: latents/s;
  - captions: the tiny random LLaVA of tests/test_captions.py through curation/captions.py VlmCaptioner: clips/s.
FLOPs per step come from torch.utils.flop_counter.FlopCounterMode on one real step (forward + backward; it counts
matmuls, convolutions and attention, the usual MFU convention), never from a formula. MFU = achieved FLOP/s over
the device's dense bf16 peak (PEAK_BF16_TFLOPS; an unknown device reports TFLOP/s and "MFU unknown").

Usage: python -m bench gpu               (the protocol; no CUDA device: one line, exit 0)
       python -m bench.gpu_bench --require-gpu     (no CUDA device: exit 2)
       python -m bench.gpu_bench --device cpu --tiny   (the same code path on CPU with tiny models: a smoke run)
Writes bench/results/gpu.json (a CPU or --tiny run: bench/results/gpu_smoke.json) and prints a table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# training/ and curation/ are imported where they are used: without a device the script answers in a second

NO_DEVICE = "no CUDA device: the GPU protocol did not run"
# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from NVIDIA's datasheets; matched in order against
# torch.cuda.get_device_name (an H100 SXM names itself "NVIDIA H100 80GB HBM3"; GH200 carries an H100 SXM die).
PEAK_BF16_TFLOPS: tuple[tuple[tuple[str, ...], float | None], ...] = (
    (("h200",), 989.0),
    (("h100", "pcie"), 756.0),
    (("h100", "nvl"), None),  # not on file: MFU unknown rather than a guess
    (("h100",), 989.0),
    (("a100",), 312.0),
)
# Seconds of timed work per phase on a GPU (warm-up, FLOP counting and model building come on top; measured
# phases sum to 345 s, so the protocol stays under 8 minutes). A --tiny run uses TINY_BUDGET_S per phase.
BUDGET_S = {"autoencoder": 150.0, "encode": 60.0, "dit": 90.0, "caption": 45.0}  # in the order they run
TINY_BUDGET_S = 2.0
LIMIT_S = 450.0  # the whole protocol; a phase's budget shrinks if the ones before it overran


def peak_bf16_tflops(device_name: str) -> float | None:
    """The device's dense bf16 peak in TFLOP/s, or None when it is not on file."""
    name = device_name.lower()
    for keys, peak in PEAK_BF16_TFLOPS:
        if all(k in name for k in keys):
            return peak
    return None


def device_info(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"type": "cpu", "name": platform.processor() or platform.machine(), "peak_bf16_tflops": None,
                "mfu_note": "n/a on CPU", "torch": torch.__version__}
    name = torch.cuda.get_device_name(device)
    peak = peak_bf16_tflops(name)
    props = torch.cuda.get_device_properties(device)
    return {"type": "cuda", "name": name, "peak_bf16_tflops": peak, "torch": torch.__version__,
            "cuda": torch.version.cuda, "capability": list(torch.cuda.get_device_capability(device)),
            "memory_gib": round(props.total_memory / 2**30, 1),
            "mfu_note": f"against {peak:g} TFLOP/s dense bf16" if peak else f"MFU unknown: no bf16 peak on file for {name!r}"}


def count_flops(step: Callable[[], object]) -> tuple[int, dict[str, int]]:
    """FLOPs of one call of `step` (forward and backward) as FlopCounterMode counts them, and the top ops."""
    with FlopCounterMode(display=False) as counter:
        step()
    by_op = {str(op).split(".")[-1] if "." in str(op) else str(op): int(n)
             for op, n in counter.get_flop_counts().get("Global", {}).items()}
    top = dict(sorted(by_op.items(), key=lambda kv: -kv[1])[:6])
    return int(counter.get_total_flops()), top


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], object], device: torch.device, budget_s: float, min_steps: int, max_steps: int) -> tuple[int, float]:
    """Run `step` until budget_s has passed (at least min_steps, at most max_steps); (steps, seconds)."""
    sync(device)
    t0 = time.perf_counter()
    n = 0
    while n < max_steps and (n < min_steps or time.perf_counter() - t0 < budget_s):
        step()
        n += 1
        if device.type == "cuda" and n % 4 == 0:
            sync(device)  # keep the clock honest: the queue never runs far ahead of the budget check
    sync(device)
    return n, time.perf_counter() - t0


def rates(flops_per_step: int, steps: int, seconds: float, info: dict) -> dict:
    """Achieved TFLOP/s and MFU (None with a note on CPU or an unknown device)."""
    tflops = flops_per_step * steps / seconds / 1e12
    peak = info["peak_bf16_tflops"]
    return {"tflops_per_s": tflops, "mfu": tflops / peak if peak else None, "mfu_note": info["mfu_note"]}


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def halving(run: Callable[[int], dict], batch: int, device: torch.device) -> dict:
    """run(batch); on a CUDA out-of-memory error, again at half the batch (down to 1)."""
    tried = []
    while True:
        tried.append(batch)
        try:
            result = run(batch)
            return result | ({"batch_sizes_tried": tried} if len(tried) > 1 else {})
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
        batch //= 2
        free(device)  # outside the handler: its traceback no longer holds the failed attempt's tensors


class Plan:
    """Phase budgets under one overall limit: a phase gets its own budget, or less when earlier ones overran."""

    def __init__(self, budgets: dict[str, float], limit_s: float):
        self.budgets, self.t0, self.limit_s = dict(budgets), time.perf_counter(), limit_s

    def budget(self, phase: str) -> float:
        later = list(self.budgets)[list(self.budgets).index(phase):]
        left = self.limit_s - (time.perf_counter() - self.t0)
        share = self.budgets[phase] / sum(self.budgets[p] for p in later)
        return max(0.0, min(self.budgets[phase], left * share))


def sizes(tiny: bool) -> dict:
    """Model geometries and batches: realistic (GPU) or tiny (CPU smoke; the same code path)."""
    if tiny:
        return {"ae": dict(kind="video", block_out_channels=(8, 16, 16), latent_channels=8, layers_per_block=1),
                "ae_window": (5, 32, 32), "ae_batch": 2, "encode_window": (5, 32, 32), "encode_batch": 2,
                "encode_clips": 4, "dit": "tiny", "dit_latent": (8, 2, 8, 8), "dit_batch": 4,
                "caption_batch": 2, "caption_clips": 4, "max_new_tokens": 8, "warmup": 1, "min_steps": 2,
                "max_steps": 3}
    return {"ae": dict(kind="video", block_out_channels=(128, 256, 512, 512), latent_channels=16, layers_per_block=2,
                       temporal_factor=4),
            "ae_window": (9, 256, 256), "ae_batch": 4, "encode_window": (17, 256, 256), "encode_batch": 16,
            "encode_clips": 64, "dit": "B", "dit_latent": (16, 5, 32, 32), "dit_batch": 32,
            "caption_batch": 16, "caption_clips": 64, "max_new_tokens": 32, "warmup": 3, "min_steps": 3,
            "max_steps": 10_000}


def bench_autoencoder(s: dict, device: torch.device, info: dict, budget_s: float) -> tuple[dict, torch.nn.Module]:
    """Training throughput of the video VAE through training/autoencoder/train.py's train_step."""
    from training.autoencoder.config import AEConfig, DataConfig, ModelConfig, TrainConfig
    from training.autoencoder.losses import perceptual_loss
    from training.autoencoder.model import compression
    from training.autoencoder.train import make_trainer, train_step

    t, h, w = s["ae_window"]
    model_cfg = ModelConfig(**s["ae"])

    def run(batch: int) -> dict:
        cfg = AEConfig(model=model_cfg, data=DataConfig(size=h, clip_frames=t, batch_size=batch),
                       train=TrainConfig(warmup_steps=0, progress=False, bf16=True))
        trainer = make_trainer(cfg, device)
        perceptual = perceptual_loss(cfg.loss.lpips_path).to(device)
        x = torch.rand(batch, 3, t, h, w, device=device) * 2 - 1  # (N, 3, T, H, W) in [-1, 1]
        step = lambda: train_step(trainer, x, cfg, perceptual, device)  # noqa: E731
        for _ in range(s["warmup"]):
            step()
        flops, top = count_flops(step)
        steps, seconds = timed(step, device, budget_s, s["min_steps"], s["max_steps"])
        params = sum(p.numel() for p in trainer.ae.parameters())
        out = {"model": f"{type(trainer.ae).__name__} {list(model_cfg.block_out_channels)} c{model_cfg.latent_channels} "
                        f"(4x{compression(trainer.ae)[1]}x{compression(trainer.ae)[1]})",
               "params_m": round(params / 1e6, 2), "window": [t, h, w], "batch": batch, "bf16_autocast": device.type == "cuda",
               "steps_timed": steps, "seconds": seconds, "clips_per_s": batch * steps / seconds,
               "frames_per_s": batch * t * steps / seconds, "flops_per_step": flops, "flops_by_op": top,
               "flop_source": "torch.utils.flop_counter.FlopCounterMode, one train_step (forward + backward)",
               **rates(flops, steps, seconds, info), "peak_memory_gib": peak_memory_gib(device)}
        out["_ae"] = trainer.ae
        return out

    out = halving(run, s["ae_batch"], device)
    ae = out.pop("_ae")
    return out, ae


def bench_encode(ae: torch.nn.Module, s: dict, device: torch.device, budget_s: float) -> dict:
    """Latents per second through encode_windows (clips start on the host, latents end there as float32)."""
    from training.autoencoder.encode import encode_windows

    ae.eval().requires_grad_(False)
    t, h, w = s["encode_window"]
    clips = torch.rand(s["encode_clips"], 3, t, h, w) * 2 - 1  # (N, 3, T, H, W) on the host
    if device.type == "cuda":
        clips = clips.pin_memory()

    def run(batch: int) -> dict:
        step = lambda: encode_windows(ae, clips, batch, device)  # noqa: E731
        mean, _ = step()  # warm-up
        steps, seconds = timed(step, device, budget_s, 1, s["max_steps"])
        n = len(clips) * steps
        return {"window": [t, h, w], "latent": list(mean.shape[1:]), "batch": batch, "clips_per_call": len(clips),
                "calls_timed": steps, "seconds": seconds, "latents_per_s": n / seconds, "frames_per_s": n * t / seconds,
                "bf16_autocast": device.type == "cuda", "peak_memory_gib": peak_memory_gib(device)}

    return halving(run, s["encode_batch"], device)


def bench_dit(s: dict, device: torch.device, info: dict, budget_s: float) -> dict:
    """Training throughput of the DiT denoiser: training/diffusion/train.py's step on random latents."""
    from training.diffusion.dit import DiTConfig
    from training.diffusion.edm import EDMLoss
    from training.diffusion.train import build_denoiser

    c, *grid = s["dit_latent"]

    def run(batch: int) -> dict:
        torch.manual_seed(0)
        cfg = DiTConfig.named(s["dit"], in_channels=c, patch_size=2)
        model = build_denoiser(cfg).to(device)
        ema = build_denoiser(cfg).to(device).requires_grad_(False)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
        loss_fn = EDMLoss()
        x = torch.randn(batch, c, *grid, device=device)  # (N, C, T', H', W')
        cond, mask = torch.randn(batch, 3, device=device), torch.ones(batch, 3, dtype=torch.bool, device=device)

        def step() -> float:  # the body of training/diffusion/train.py's loop, without data loading
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = loss_fn(model, x, cond, mask).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), model.parameters()):
                    p_ema.lerp_(p, 1 - 0.999)
            return loss.item()

        for _ in range(s["warmup"]):
            step()
        flops, top = count_flops(step)
        steps, seconds = timed(step, device, budget_s, s["min_steps"], s["max_steps"])
        tokens = int(np.prod([-(-g // p) for g, p in zip(grid, (1, 2, 2))]))
        return {"model": f"DiT-{s['dit']} (hidden {cfg.hidden_size}, depth {cfg.depth}, heads {cfg.num_heads}), patch 1x2x2",
                "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2), "latent": [c, *grid],
                "tokens_per_sample": tokens, "batch": batch, "bf16_autocast": device.type == "cuda", "steps_timed": steps,
                "seconds": seconds, "samples_per_s": batch * steps / seconds, "tokens_per_s": batch * tokens * steps / seconds,
                "flops_per_step": flops, "flops_by_op": top,
                "flop_source": "torch.utils.flop_counter.FlopCounterMode, one training step (forward + backward)",
                **rates(flops, steps, seconds, info), "peak_memory_gib": peak_memory_gib(device)}

    return halving(run, s["dit_batch"], device)


def bench_caption(s: dict, device: torch.device, budget_s: float, tmp: str) -> dict:
    """Clips per second of VlmCaptioner with the tests' tiny random LLaVA (built here, saved, loaded by path)."""
    from curation.captions import VlmCaptioner
    from tests.test_captions import build_tiny_vlm

    folder = str(Path(tmp) / "tiny-llava")
    build_tiny_vlm(folder)
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    captioner = VlmCaptioner(folder, "Describe this video.", frames_per_clip=3, max_new_tokens=s["max_new_tokens"],
                             batch_size=s["caption_batch"], device=str(device), dtype=dtype)
    rng = np.random.default_rng(0)
    clips = [[rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(8)] for _ in range(s["caption_clips"])]
    texts = captioner.caption_clips(clips[: s["caption_batch"]])  # warm-up
    steps, seconds = timed(lambda: captioner.caption_clips(clips), device, budget_s, 1, s["max_steps"])
    return {"model": "tiny random LLaVA (tests/test_captions.py build_tiny_vlm): pipeline cost, not a real VLM's",
            "dtype": dtype, "batch": s["caption_batch"], "frames_per_clip": 3, "max_new_tokens": s["max_new_tokens"],
            "clips_per_call": len(clips), "calls_timed": steps, "seconds": seconds,
            "clips_per_s": len(clips) * steps / seconds, "captions_nonempty": sum(bool(t) for t in texts)}


def summary_rows(report: dict) -> list[dict]:
    a, d, e, c = (report[k] for k in ("autoencoder_train", "dit_train", "encode", "caption"))

    def mfu(x: dict):
        return round(x["mfu"], 4) if x["mfu"] is not None else x["mfu_note"]

    return [
        {"metric": "autoencoder train clips/s", "value": a["clips_per_s"], "unit": f"{a['window'][0]}x{a['window'][1]}² clips/s"},
        {"metric": "autoencoder train TFLOP/s", "value": a["tflops_per_s"], "unit": "TFLOP/s"},
        {"metric": "autoencoder train MFU (bf16)", "value": mfu(a), "unit": ""},
        {"metric": "DiT train samples/s", "value": d["samples_per_s"], "unit": "samples/s"},
        {"metric": "DiT train TFLOP/s", "value": d["tflops_per_s"], "unit": "TFLOP/s"},
        {"metric": "DiT train MFU (bf16)", "value": mfu(d), "unit": ""},
        {"metric": "encode latents/s", "value": e["latents_per_s"], "unit": f"{e['window'][0]}x{e['window'][1]}² windows/s"},
        {"metric": "caption clips/s (tiny VLM)", "value": c["clips_per_s"], "unit": "clips/s"},
    ]


def table(report: dict) -> str:
    dev = report["device"]
    lines = [f"GPU protocol on {dev['name']} ({dev['type']}{', tiny models' if report['tiny'] else ''}), "
             f"{report['wall_s']:.0f} s", f"{'metric':<34} {'value':>14}  unit"]
    for r in report["summary"]:
        v = r["value"]
        lines.append(f"{r['metric']:<34} {(f'{v:.4g}' if isinstance(v, float) else str(v)):>14}  {r['unit']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict | int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (a smoke run; MFU n/a)")
    ap.add_argument("--tiny", action="store_true", help="tiny models and a few steps: the same code path in seconds")
    ap.add_argument("--require-gpu", action="store_true", help="exit 2 (not 0) when there is no CUDA device")
    ap.add_argument("--limit-s", type=float, default=LIMIT_S, help=f"seconds for all phases (default {LIMIT_S:g})")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for a CPU run (default 1: on a shared "
                                                        "2-core machine one thread is several times faster than two)")
    ap.add_argument("--out", default=None, help="JSON report (default bench/results/gpu.json; a CPU or --tiny run: "
                                                "bench/results/gpu_smoke.json, so a smoke never replaces GPU figures)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(NO_DEVICE, flush=True)
        if args.require_gpu:
            return 2
        return {"status": NO_DEVICE, "summary": [{"metric": "status", "value": NO_DEVICE, "unit": ""}]}
    smoke = args.tiny or device.type != "cuda"
    out = Path(args.out) if args.out else REPO / "bench" / "results" / ("gpu_smoke.json" if smoke else "gpu.json")
    s = sizes(args.tiny)
    info = device_info(device)
    plan = Plan({k: TINY_BUDGET_S for k in BUDGET_S} if args.tiny else BUDGET_S, args.limit_s)
    started, t0 = dt.datetime.now(dt.timezone.utc).isoformat(), time.perf_counter()
    report: dict = {"protocol": "gpu", "tiny": args.tiny, "device": info, "started_at": started}
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        info["threads"] = args.threads
    try:
        with tempfile.TemporaryDirectory(prefix="vidcurate-gpu-bench-") as tmp:
            walls, t = {}, time.perf_counter()
            report["autoencoder_train"], ae = bench_autoencoder(s, device, info, plan.budget("autoencoder"))
            walls["autoencoder_train"], t = time.perf_counter() - t, time.perf_counter()
            report["encode"] = bench_encode(ae, s, device, plan.budget("encode"))
            walls["encode"], t = time.perf_counter() - t, time.perf_counter()
            del ae
            free(device)
            report["dit_train"] = bench_dit(s, device, info, plan.budget("dit"))
            walls["dit_train"], t = time.perf_counter() - t, time.perf_counter()
            free(device)
            report["caption"] = bench_caption(s, device, plan.budget("caption"), tmp)
            walls["caption"] = time.perf_counter() - t
            report["phase_wall_s"] = walls  # building, warm-up and FLOP counting included
    finally:
        torch.set_num_threads(threads)
    report["wall_s"] = time.perf_counter() - t0
    report["summary"] = summary_rows(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(table(report), flush=True)
    print(f"wrote {out}", flush=True)
    return report


if __name__ == "__main__":
    r = main()
    sys.exit(r if isinstance(r, int) else 0)
