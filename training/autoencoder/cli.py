"""`vidcurate train-ae`, `encode` and `eval-ae`: argparse subcommands; pipelines/cli.py calls add_parsers.

Each subcommand sets `func(args) -> int` (the exit code). A bad option, input or config raises
SystemExit(message): one line and exit 2 under `vidcurate`.
"""
from __future__ import annotations

import argparse
import json

from training.cli_checks import read_yaml, require


def _train(args: argparse.Namespace) -> int:
    from training.autoencoder.config import AEConfig, check_config, config_from_dict

    try:
        cfg = config_from_dict(read_yaml(args.config)) if args.config else AEConfig()
    except (ValueError, TypeError) as e:
        raise SystemExit(f"train-ae: bad config: {e}") from None
    if args.manifest:
        cfg.data.manifest = args.manifest
    if args.out:
        cfg.train.out_dir = args.out
    if args.steps is not None:
        cfg.train.steps = args.steps
    if args.device:
        cfg.train.device = args.device
    if args.pretrained:
        cfg.model.pretrained = args.pretrained
    if args.lpips:
        cfg.loss.lpips_path = args.lpips
    if not cfg.data.manifest:
        raise SystemExit("train-ae: no manifest (give --manifest or data.manifest in the config)")
    try:
        check_config(cfg)
    except ValueError as e:
        raise SystemExit(f"train-ae: bad config: {e}") from None
    for uri, flag in ((cfg.data.manifest, "--manifest"), (cfg.model.pretrained, "--pretrained"),
                      (cfg.loss.lpips_path, "--lpips")):
        if uri:
            require(uri, flag)
    from training.autoencoder.train import train_autoencoder  # diffusers: seconds to import, after the checks

    path = train_autoencoder(cfg)
    print(path)
    return 0


def _encode(args: argparse.Namespace) -> int:
    require(args.manifest, "--manifest")
    require(args.checkpoint, "--checkpoint")
    if args.max_clips_like:
        import schemas

        args.max_clips = schemas.read_table(require(args.max_clips_like, "--max-clips-like"), "curated").num_rows
    common = dict(
        fps=args.fps, size=args.size, frames=args.frames, max_windows=args.max_windows, bucket_area=args.bucket_area,
        bucket_multiple=args.bucket_multiple, batch_size=args.batch_size, table=args.table, use_ema=not args.no_ema,
    )
    if args.ray:
        from training.autoencoder.encode_ray import encode_manifest_ray

        if args.max_clips is not None:
            raise SystemExit("encode: --max-clips is not supported with --ray")

        summary = encode_manifest_ray(
            args.manifest, args.checkpoint, args.out, num_actors=args.num_actors, num_gpus=args.num_gpus, **common
        )
    else:
        from training.autoencoder.encode import encode_manifest

        summary = encode_manifest(args.manifest, args.checkpoint, args.out, device=args.device,
                                  max_clips=args.max_clips, **common)
    print(json.dumps({k: v for k, v in summary.items() if k != "failed"} | {"failed": len(summary["failed"])}))
    return 0 if not summary["failed"] else 1


def _evaluate(args: argparse.Namespace) -> int:
    from training.autoencoder.evaluate import evaluate_autoencoder

    report = evaluate_autoencoder(require(args.checkpoint, "--checkpoint"), require(args.manifest, "--manifest"), args.out, size=args.size, fps=args.fps,
                                  frames=args.frames, max_clips=args.max_clips,
                                  holdout_fraction=args.holdout_fraction, table=args.table)
    keys = ["autoencoder", "num_clips", "psnr_db", "bicubic_psnr_db", "ssim", "flicker", "compression"]
    short = {k: report[k] for k in keys} | {"spectrum_alpha": {k: report["spectrum"][k] for k in ("latent_alpha", "rgb_alpha")}}
    print(json.dumps(short, indent=1, default=str))
    model, bicubic = report["psnr_db"]["mean"], report["bicubic_psnr_db"]["mean"]
    print(f"held-out PSNR: autoencoder {model:.2f} dB, bicubic from the latent's size {bicubic:.2f} dB "
          f"({model - bicubic:+.2f} dB)")
    print(f"wrote {args.out}")
    return 0


def add_parsers(subparsers) -> None:
    """Add `train-ae`, `encode` and `eval-ae` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "train-ae",
        help="train the latent autoencoder on a curated manifest",
        description="Train a causal video autoencoder (model.kind: video, diffusers AutoencoderKLWan) or a per-frame "
        "AutoencoderKL (model.kind: image) on windows of manifest clips: L1 + perceptual + KL [+ PatchGAN] "
        "[+ EQ-VAE] [+ diffusability]. Resumes from OUT/checkpoint.pt when present; metrics in OUT/metrics.jsonl.",
    )
    p.add_argument("--config", help="YAML with sections model/data/loss/train (see training/autoencoder/config.py)")
    p.add_argument("--manifest", help="curated table URI (file or folder); overrides data.manifest")
    p.add_argument("--out", help="output folder; overrides train.out_dir")
    p.add_argument("--steps", type=int, help="total optimiser steps; overrides train.steps")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--pretrained", help="local diffusers-format VAE folder to start from (Wan 2.1, LTX-Video, CogVideoX, "
                   "Cosmos, SD...); loaded by the class its config.json names")
    p.add_argument("--lpips", help="TorchScript LPIPS file; without it a weight-free gradient loss is used")
    p.set_defaults(func=_train)

    e = subparsers.add_parser(
        "encode",
        help="encode manifest clips into latents (posterior mean + std per window)",
        description="Cut each clip into windows of --frames frames at --fps, encode each to (C, T', H', W'), and write "
        "OUT/latents.parquet (one row per window), OUT/shards/*.safetensors and OUT/stats.json. Clips already "
        "encoded with the same checkpoint and settings are skipped; a different one replaces everything.",
    )
    e.add_argument("--manifest", required=True, help="curated table URI (file or folder)")
    e.add_argument("--checkpoint", required=True, help="training checkpoint (.pt) or diffusers VAE folder")
    e.add_argument("--out", required=True, help="latents folder (any fsspec URI)")
    e.add_argument("--table", default="curated", help="manifest table: curated (default) or clips")
    e.add_argument("--fps", type=float, default=8.0, help="frames per second each clip is resampled to (default 8)")
    e.add_argument("--frames", type=int, default=17,
                   help="frames per window, 1 + 4k for a 4x video autoencoder (default 17)")
    e.add_argument("--max-windows", type=int, default=None, help="windows per clip at most (default: all)")
    e.add_argument("--size", type=int, default=256, help="square center-crop side in pixels (default 256)")
    e.add_argument("--bucket-area", type=int, default=None,
                   help="pixels per frame of aspect-ratio buckets (e.g. 65536 for ~256x256); each clip goes to its "
                   "nearest bucket instead of the square --size")
    e.add_argument("--bucket-multiple", type=int, default=16, help="bucket sides are multiples of this (default 16)")
    e.add_argument("--batch-size", type=int, default=4, help="windows per forward pass (default 4)")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (local mode)")
    e.add_argument("--no-ema", action="store_true", help="use the raw weights of a training checkpoint, not EMA")
    e.add_argument("--ray", action="store_true", help="encode with a Ray actor pool (one model per actor)")
    e.add_argument("--num-actors", type=int, default=2, help="Ray actors (with --ray)")
    e.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray actor (with --ray)")
    e.add_argument("--max-clips", type=int, default=None,
                   help="encode only the first N clips by clip_id (a deterministic random sample)")
    e.add_argument("--max-clips-like", metavar="MANIFEST", default=None,
                   help="--max-clips = the number of clips in this curated manifest (an uncurated arm of the same size)")
    e.set_defaults(func=_encode)

    e = subparsers.add_parser(
        "eval-ae",
        help="held-out per-frame PSNR/SSIM, flicker, compression, equivariance and spectra of an autoencoder",
        description="Evaluate on the clips the training split held out (same clip_id hash rule), the middle window "
        "of --frames frames at --fps of each; write a JSON report.",
    )
    e.add_argument("--checkpoint", required=True, help="training checkpoint (.pt) or diffusers VAE folder")
    e.add_argument("--manifest", required=True, help="curated table URI (file or folder)")
    e.add_argument("--out", required=True, help="report JSON path")
    e.add_argument("--table", default="curated", help="curated (default) or clips")
    e.add_argument("--size", type=int, default=64, help="square crop side in pixels (default 64)")
    e.add_argument("--fps", type=float, default=8.0, help="frames per second each clip is resampled to (default 8)")
    e.add_argument("--frames", type=int, default=17, help="frames per evaluated window (default 17)")
    e.add_argument("--max-clips", type=int, default=64)
    e.add_argument("--holdout-fraction", type=float, default=0.02,
                   help="must match the training config's data.holdout_fraction")
    e.set_defaults(func=_evaluate)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry for development: python -m training.autoencoder.cli {train-ae,encode} ..."""
    parser = argparse.ArgumentParser(prog="vidcurate-ae")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
