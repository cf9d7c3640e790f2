"""`vidcurate train-diffusion | sample | ablate`: thin argparse entry points over the library.

The lead's pipelines/cli.py calls `add_parsers(subparsers)`; each subcommand sets `func(args) -> int`
(the exit code) via `set_defaults`.
"""
import argparse
import json
import os
import sys
from pathlib import Path

from training.diffusion.train import TrainConfig

__all__ = ["add_parsers", "main"]

_OVERRIDES = {  # CLI flag → TrainConfig field
    "model": ("--model", str, "DiT size: tiny, mini, S, B, L, XL"),
    "steps": ("--steps", int, "training steps"),
    "batch_size": ("--batch-size", int, "global batch size"),
    "lr": ("--lr", float, "AdamW learning rate"),
    "objective": ("--objective", str, "edm (Karras et al. 2022) or rf (rectified flow)"),
    "seed": ("--seed", int, "random seed"),
    "device": ("--device", str, "auto, cpu, cuda, cuda:N"),
    "ckpt_every": ("--ckpt-every", int, "checkpoint interval in steps"),
}


def _add_train_options(p: argparse.ArgumentParser):
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags below override it)")
    for field, (flag, typ, help_) in _OVERRIDES.items():
        p.add_argument(flag, dest=field, type=typ, default=None, help=help_)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _train_config(args, **fixed) -> TrainConfig:
    d = {}
    if args.config:
        import yaml

        d.update(yaml.safe_load(Path(args.config).read_text()) or {})
    d.update({k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None})
    d.update(fixed)
    if args.no_progress:
        d["progress"] = False
    return TrainConfig.from_dict(d)


def _cmd_train(args) -> int:
    from training.diffusion.train import train

    result = train(_train_config(args, latents_dir=args.latents, out_dir=args.out))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary line
        print(json.dumps({k: v for k, v in result.items() if k != "losses"}
                         | {"final_loss": result["losses"][-1] if result["losses"] else None}))
    return 0


def _parse_conds(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items or []:
        name, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"--cond expects NAME=VALUE, got {item!r}")
        out[name] = float(value)
    return out


def _cmd_sample(args) -> int:
    import torch
    from safetensors.torch import save_file

    from training.diffusion.data import conditions_tensor
    from training.diffusion.samplers import sample, save_grid
    from training.diffusion.train import cond_stats_of, latent_stats_of, load_checkpoint

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    net, ck = load_checkpoint(args.checkpoint, ema=not args.no_ema, device=device)
    cs = cond_stats_of(ck)
    conds = _parse_conds(args.cond)
    unknown = set(conds) - set(cs.names)
    if unknown:
        raise SystemExit(f"unknown condition(s) {sorted(unknown)}; the model knows {list(cs.names)}")
    cond = mask = None
    if conds:
        raw, mask = conditions_tensor(conds, cs.names)
        cond = cs.normalize(raw)
    d = ck["dit"]
    hw = (d["input_size"],) * 2 if isinstance(d["input_size"], int) else tuple(d["input_size"])
    g = torch.Generator(device=device).manual_seed(args.seed)
    z = sample(net, (d["in_channels"], *hw), args.n, cond=cond, cond_mask=mask,
               guidance=args.guidance, steps=args.steps, sampler=args.sampler, s_churn=args.churn, generator=g,
               device=device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    latents = latent_stats_of(ck).denormalize(z.cpu())  # what the autoencoder's decoder takes
    save_file({"latents": latents.contiguous()}, str(out / "samples.safetensors"))
    save_grid(z, out / "grid.png")
    (out / "samples.json").write_text(json.dumps({"checkpoint": args.checkpoint, "n": args.n, "steps": args.steps,
                                                  "sampler": args.sampler, "guidance": args.guidance,
                                                  "conditions": conds, "seed": args.seed,
                                                  "ae_hash": ck["latent_stats"].get("ae_hash")}))
    if args.autoencoder:  # decode through the autoencoder the latents came from: frames, not latent channels
        from training.autoencoder.model import checkpoint_hash, load_autoencoder

        ae_hash = ck["latent_stats"].get("ae_hash")
        if ae_hash and checkpoint_hash(args.autoencoder) != ae_hash:
            print(f"warning: {args.autoencoder} is not the autoencoder these latents were encoded with")
        ae = load_autoencoder(args.autoencoder).to(device)
        with torch.no_grad():
            frames = ae.decode(latents.to(device)).sample.clamp(-1, 1).cpu()  # (N, 3, H, W) in [-1, 1]
        save_grid(frames, out / "frames_grid.png")
        print(f"decoded {args.n} samples to frames: {out / 'frames_grid.png'}")
    if args.spectral_reference:  # RAPSD of data, noised data at several σ, and these samples
        from training.diffusion.data import LatentDataset
        from training.spectral import spectral_report

        ref = LatentDataset(args.spectral_reference, cs.names)
        data = ref.mean_frames()  # normalised with the reference stats, like the samples below
        samples = ref.stats.normalize(latents)
        spectral_report(data.numpy(), out, samples=samples.numpy())
    print(f"wrote {args.n} latents {tuple(latents.shape[1:])} to {out / 'samples.safetensors'}")
    return 0


def _cmd_ablate(args) -> int:
    from training.diffusion.ablate import ablate

    result = ablate(args.curated, args.uncurated, _train_config(args, out_dir=args.out),
                    n_samples=args.n_samples, sample_steps=args.sample_steps)
    print(json.dumps(result["side_by_side"], indent=1))
    return 0


def add_parsers(subparsers) -> None:
    """Add the `train-diffusion`, `sample` and `ablate` subcommands to an argparse subparsers object."""
    p = subparsers.add_parser("train-diffusion", help="train the DiT denoiser on a latents folder",
                              description="Train (or resume) an EDM/RF DiT on LATENTS_DIR; checkpoints, "
                                          "metrics.jsonl in --out. Multi-GPU: torchrun --nproc_per_node=G ...")
    p.add_argument("--latents", required=True, help="latents folder (latents.parquet, shards/, stats.json)")
    p.add_argument("--out", required=True, help="run folder; resumes from OUT/ckpt.pt if present")
    _add_train_options(p)
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser("sample", help="sample latents from a diffusion checkpoint",
                              description="Write OUT/samples.safetensors ('latents', denormalised for the "
                                          "decoder), OUT/grid.png and OUT/samples.json.")
    p.add_argument("--checkpoint", required=True, help="ckpt.pt written by train-diffusion")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=16, help="number of samples")
    p.add_argument("--steps", type=int, default=32, help="sampling steps (Karras schedule, rho=7)")
    p.add_argument("--sampler", choices=["heun", "euler"], default="heun")
    p.add_argument("--churn", type=float, default=0.0, help="S_churn (Karras et al. 2022, Alg. 2)")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1 = none)")
    p.add_argument("--cond", action="append", metavar="NAME=VALUE",
                   help="raw condition value, e.g. --cond aesthetic=6.5 (repeatable; others: missing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--autoencoder", metavar="CHECKPOINT",
                   help="decode the samples to frames with this autoencoder and write OUT/frames_grid.png")
    p.add_argument("--spectral-reference", metavar="LATENTS_DIR",
                   help="also write OUT/rapsd.png + rapsd.json: RAPSD of these latents, of them noised at "
                        "several σ (with the noise/signal crossover), and of the samples")
    p.set_defaults(func=_cmd_sample)

    p = subparsers.add_parser("ablate", help="same model and budget on curated vs uncurated latents",
                              description="Train on both latent sets, evaluate both against the curated set, "
                                          "write OUT/ablation.json.")
    p.add_argument("--curated", required=True, help="latents folder of the curated clips")
    p.add_argument("--uncurated", required=True, help="latents folder of the uncurated clips")
    p.add_argument("--out", required=True, help="output folder (OUT/curated, OUT/uncurated, ablation.json)")
    p.add_argument("--n-samples", type=int, default=256, help="samples per arm for the metrics")
    p.add_argument("--sample-steps", type=int, default=32)
    _add_train_options(p)
    p.set_defaults(func=_cmd_ablate)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (python -m training.diffusion.cli ...) for use before the lead wires it in."""
    parser = argparse.ArgumentParser(prog="vidcurate-diffusion")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
