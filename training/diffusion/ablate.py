"""The curation experiment: the same small model, the same budget, trained on curated vs uncurated video latents
(windows (C, T', H', W')), evaluated against the same reference (the curated set), reported side by side."""
import json
from dataclasses import asdict, replace
from pathlib import Path

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
