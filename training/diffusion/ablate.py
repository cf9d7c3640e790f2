"""The curation experiment: the same small model, the same budget, trained on curated vs uncurated video latents
(windows (C, T', H', W')), evaluated against the same reference (the curated set), reported side by side.

Also the library of the multi-seed study (pipelines/ablation_study.py): `subset_latents` (a random arm of a given
size), `train_arm` and `sample_arm` (samples at the reference's window shape, in its normalisation and raw).
"""
import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

import schemas
from training.diffusion.evaluate import evaluate_checkpoint
from training.diffusion.train import TrainConfig, train


def ablate(curated_latents_dir: str, uncurated_latents_dir: str, cfg: TrainConfig | dict,
           n_samples: int = 256, sample_steps: int = 32) -> dict:
    """Train cfg on both latent sets (out_dir/curated, out_dir/uncurated); write and return out_dir/ablation.json.

    Same seed, steps and batch size for both arms, so the only difference is the data. Metrics use the
    curated set as reference: "does training on unfiltered data get the model closer or further from what
    we want to generate?" Nearest-neighbour distances use each arm's own training set.
    """
    cfg = TrainConfig.from_dict(cfg) if isinstance(cfg, dict) else cfg
    out = Path(cfg.out_dir)
    result = {"reference": str(curated_latents_dir),
              "budget": {"steps": cfg.steps, "batch_size": cfg.batch_size, "model": cfg.model, "seed": cfg.seed,
                         "samples_seen": cfg.steps * cfg.batch_size},
              "config": asdict(cfg)}
    for arm, latents in (("curated", curated_latents_dir), ("uncurated", uncurated_latents_dir)):
        arm_cfg = replace(cfg, latents_dir=str(latents), out_dir=str(out / arm))
        run = train(arm_cfg)
        metrics = evaluate_checkpoint(run["checkpoint"], str(curated_latents_dir), train_dir=str(latents),
                                      n_samples=n_samples, steps=sample_steps, seed=cfg.seed)
        losses = run["losses"]
        tail = losses[-max(1, len(losses) // 10):]
        result[arm] = {"latents_dir": str(latents), "final_train_loss": sum(tail) / len(tail),
                       "train_seconds": run["seconds"], **metrics}
    result["side_by_side"] = {k: {"curated": result["curated"][k], "uncurated": result["uncurated"][k]}
                              for k in ("kid", "frechet", "rapsd_alpha_samples", "temporal_alpha_samples",
                                        "final_train_loss")}
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def subset_latents(src_dir: str | Path, dst_dir: str | Path, n: int | None = None, seed: int = 0,
                   clip_ids: set[str] | None = None) -> Path:
    """A latents folder of n windows of src drawn at random without replacement (numpy seed `seed`), or of the
    windows of the given clips.

    The table is rewritten; stats.json is copied (the normalisation of the whole set) and shards/ is a symlink,
    so no tensor is copied.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    table = schemas.read_table(str(src / "latents.parquet"), "latents")
    if clip_ids is not None:
        keep = np.array([i for i, c in enumerate(table.column("clip_id").to_pylist()) if c in clip_ids], dtype=int)
        if not len(keep):
            raise ValueError(f"none of the {len(clip_ids)} clips has latents in {src}")
    elif n is None or not 0 < n <= table.num_rows:
        raise ValueError(f"cannot draw {n} windows from {src} ({table.num_rows} windows)")
    else:
        keep = np.sort(np.random.default_rng(seed).choice(table.num_rows, n, replace=False))
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    schemas.write_table(table.take(keep), "latents", str(dst / "latents.parquet"), schema=table.schema)
    shutil.copy(src / "stats.json", dst / "stats.json")
    os.symlink((src / "shards").resolve(), dst / "shards", target_is_directory=True)
    return dst


def train_arm(latents_dir: str | Path, cfg: TrainConfig, out_dir: str | Path, seed: int) -> dict:
    """train() on one arm's latents with cfg's model, steps and batch size and this seed; summary without losses."""
    run = train(replace(cfg, latents_dir=str(latents_dir), out_dir=str(out_dir), seed=seed))
    losses = run["losses"]
    if not losses and (Path(out_dir) / "metrics.jsonl").exists():  # a finished run resumed: its logged losses
        lines = (Path(out_dir) / "metrics.jsonl").read_text().splitlines()
        losses = [json.loads(ln)["loss"] for ln in lines]
    tail = losses[-max(1, len(losses) // 10):]
    return {"checkpoint": run["checkpoint"], "seconds": run["seconds"], "steps": run["step"],
            "final_train_loss": sum(tail) / len(tail) if tail else None}


@torch.no_grad()
def sample_arm(checkpoint: str, reference_dir: str | Path, n: int, steps: int = 32, seed: int = 0,
               sampler: str = "heun") -> dict:
    """n unconditional samples at the reference's most common window shape.

    Returns {"normalized": (N, C, T', H', W') in the reference's normalisation (what the features compare),
    "raw": the same denormalised (what the autoencoder's decoder takes), "shape"}.
    """
    from training.diffusion.data import LatentDataset
    from training.diffusion.samplers import sample
    from training.diffusion.train import latent_stats_of, load_checkpoint

    net, ck = load_checkpoint(checkpoint)
    ref = LatentDataset(str(reference_dir), tuple(ck["config"]["conditions"]))
    shape = ref.common_shape
    g = torch.Generator().manual_seed(seed)
    raw = latent_stats_of(ck).denormalize(sample(net, shape, n, steps=steps, sampler=sampler, generator=g))
    return {"normalized": ref.stats.normalize(raw), "raw": raw, "shape": list(shape)}
