"""`vidcurate train-diffusion | sample`: thin argparse entry points over the library.

pipelines/cli.py calls `add_parsers(subparsers)`; each subcommand sets `func(args) -> int` (the exit code) via
`set_defaults`. A bad option, input or config raises SystemExit(message): one line and exit 2 under `vidcurate`.
The curated-vs-uncurated experiment is `vidcurate ablation-study` (pipelines/ablation_study.py).
"""
import argparse
import json
import os
import sys
from pathlib import Path

from training.cli_checks import read_yaml, require
from training.diffusion.dit import SIZES
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
    "patch_size": ("--patch-size", int, "spatial patch side in latent cells"),
    "temporal_patch": ("--temporal-patch", int, "latent frames per patch"),
    "attention": ("--attention", str, "full, or factorised (alternating spatial/temporal blocks, for long clips)"),
}


def _add_train_options(p: argparse.ArgumentParser):
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags below override it)")
    for field, (flag, typ, help_) in _OVERRIDES.items():
        p.add_argument(flag, dest=field, type=typ, default=None, help=help_)
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward (memory)")
    p.add_argument("--text-encoder", choices=["t5", "open_clip"], help="condition on captions with this encoder")
    p.add_argument("--text-encoder-path", help="t5: folder (encoder + tokenizer); open_clip: checkpoint file")
    p.add_argument("--text-encoder-model", help="open_clip architecture name, e.g. ViT-B-32")
    p.add_argument("--text-encoder-config", help="open_clip JSON architecture file (custom models)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _train_config(args, **fixed) -> TrainConfig:
    d = read_yaml(args.config) if args.config else {}
    d.update({k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None})
    d.update(fixed)
    if args.no_progress:
        d["progress"] = False
    if args.grad_checkpointing:
        d["grad_checkpointing"] = True
    if args.text_encoder:
        if not args.text_encoder_path:
            raise SystemExit("--text-encoder needs --text-encoder-path")
        d["text_encoder"] = {"kind": args.text_encoder, "path": args.text_encoder_path,
                             "model_name": args.text_encoder_model, "model_config": args.text_encoder_config}
    try:
        cfg = TrainConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"bad train-diffusion config: {e}") from None
    known = {"model": tuple(SIZES), "objective": ("edm", "rf"), "attention": ("full", "factorised")}
    for key, choices in known.items():
        if getattr(cfg, key) not in choices:
            raise SystemExit(f"bad train-diffusion config: {key} {getattr(cfg, key)!r}, known: {', '.join(choices)}")
    return cfg


def _cmd_train(args) -> int:
    from training.diffusion.train import train

    result = train(_train_config(args, latents_dir=require(args.latents, "--latents"), out_dir=args.out))
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


def _parse_shape(text: str | None, channels: int, shapes: list) -> tuple[int, ...]:
    if not text:
        return shapes[0][0]  # the most common training bucket
    try:
        t, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"--shape expects T,H,W in latent cells, got {text!r}") from None
    return (channels, t, h, w)


def _prompt_embedding(ck: dict, prompt: str, encoder_path: str | None, device: str):
    """(text (1, L, D), mask (1, L)) of the prompt, with the text encoder the checkpoint was trained with."""
    from training.text_encoders import TextEncoder, TextEncoderConfig

    te = ck["config"].get("text_encoder")
    if not te:
        raise SystemExit("--prompt: this checkpoint was trained without a text encoder")
    cfg = TextEncoderConfig.from_dict({**te, "path": encoder_path or te["path"], "device": device})
    return TextEncoder(cfg).encode([prompt])


def _cmd_sample(args) -> int:
    import torch
    from safetensors.torch import save_file

    from training.diffusion.data import conditions_tensor
    from training.diffusion.media import save_contact_sheet, write_mp4
    from training.diffusion.samplers import sample
    from training.diffusion.train import cond_stats_of, latent_shapes_of, latent_stats_of, load_checkpoint

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    net, ck = load_checkpoint(require(args.checkpoint, "--checkpoint"), ema=not args.no_ema, device=device)
    cs = cond_stats_of(ck)
    conds = _parse_conds(args.cond)
    unknown = set(conds) - set(cs.names)
    if unknown:
        raise SystemExit(f"unknown condition(s) {sorted(unknown)}; the model knows {list(cs.names)}")
    cond = mask = None
    if conds:
        raw, mask = conditions_tensor(conds, cs.names)
        cond = cs.normalize(raw)
    text = text_mask = None
    if args.prompt is not None:
        text, text_mask = _prompt_embedding(ck, args.prompt, args.text_encoder_path, device)
        text, text_mask = text[0], text_mask[0]
    shape = _parse_shape(args.shape, ck["dit"]["in_channels"], latent_shapes_of(ck))
    g = torch.Generator(device=device).manual_seed(args.seed)
    z = sample(net, shape, args.n, cond=cond, cond_mask=mask, guidance=args.guidance, steps=args.steps,
               sampler=args.sampler, s_churn=args.churn, generator=g, device=device, text=text, text_mask=text_mask)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    latents = latent_stats_of(ck).denormalize(z.cpu())  # (N, C, T', H', W'): what the autoencoder's decoder takes
    save_file({"latents": latents.contiguous()}, str(out / "samples.safetensors"))
    save_contact_sheet(z, out / "latents_sheet.png")
    fps = args.fps or ck.get("fps") or 8.0
    record = {"checkpoint": args.checkpoint, "n": args.n, "steps": args.steps, "sampler": args.sampler,
              "guidance": args.guidance, "conditions": conds, "prompt": args.prompt, "seed": args.seed,
              "latent_shape": list(shape), "ae_hash": ck["latent_stats"].get("ae_hash"), "videos": []}
    if args.autoencoder:  # decode through the autoencoder the latents came from: clips, not latent channels
        from training.autoencoder.model import checkpoint_hash, decode_video, load_autoencoder

        ae_hash = ck["latent_stats"].get("ae_hash")
        if ae_hash and checkpoint_hash(args.autoencoder) != ae_hash:
            print(f"warning: {args.autoencoder} is not the autoencoder these latents were encoded with")
        ae = load_autoencoder(args.autoencoder).to(device)
        with torch.no_grad():
            clips = torch.cat([decode_video(ae, latents[i:i + 1].to(device)).clamp(-1, 1).cpu()
                               for i in range(args.n)])  # (N, 3, T, H, W) in [-1, 1]
        for i, clip in enumerate(clips):
            path = write_mp4(clip, out / f"sample_{i:03d}.mp4", fps=fps, codec=args.codec)
            record["videos"].append({"path": path.name, "frames": int(clip.shape[1]), "height": int(clip.shape[2]),
                                     "width": int(clip.shape[3]), "fps": fps})
        save_contact_sheet(clips, out / "contact_sheet.png")
        print(f"decoded {args.n} samples to {clips.shape[2]}-frame mp4s and {out / 'contact_sheet.png'}")
    (out / "samples.json").write_text(json.dumps(record, indent=1))
    if args.spectral_reference:  # spatial RAPSD and temporal PSD of data, noised data at several σ, and samples
        from training.diffusion.data import LatentDataset
        from training.spectral import spectral_report, temporal_report

        ref = LatentDataset(args.spectral_reference, cs.names)
        data = ref.mean_windows()  # (N, C, T', H', W'), normalised with the reference stats, like the samples
        samples = ref.stats.normalize(latents)
        spectral_report(_frames(data), out, samples=_frames(samples))
        if data.shape[2] > 1 and samples.shape[2] > 1:
            temporal_report(data.numpy(), out, samples=samples.numpy())
    print(f"wrote {args.n} latents {tuple(latents.shape[1:])} to {out / 'samples.safetensors'}")
    return 0


def _frames(v):
    """(N, C, T, H, W) → (N·T, C, H, W) numpy frames for the spatial RAPSD."""
    return v.transpose(1, 2).reshape(-1, *v.shape[1:2], *v.shape[3:]).numpy()


def add_parsers(subparsers) -> None:
    """Add the `train-diffusion` and `sample` subcommands to an argparse subparsers object."""
    p = subparsers.add_parser("train-diffusion", help="train the DiT denoiser on a latents folder",
                              description="Train (or resume) an EDM/RF DiT on LATENTS_DIR; checkpoints, "
                                          "metrics.jsonl in --out. Multi-GPU: torchrun --nproc_per_node=G ...")
    p.add_argument("--latents", required=True, help="latents folder (latents.parquet, shards/, stats.json)")
    p.add_argument("--out", required=True, help="run folder; resumes from OUT/ckpt.pt if present")
    _add_train_options(p)
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser("sample", help="sample video latents from a diffusion checkpoint (and decode to mp4)",
                              description="Write OUT/samples.safetensors ('latents' (N, C, T', H', W'), "
                                          "denormalised for the decoder), OUT/latents_sheet.png and OUT/samples.json; "
                                          "with --autoencoder also OUT/sample_NNN.mp4 and OUT/contact_sheet.png.")
    p.add_argument("--checkpoint", required=True, help="ckpt.pt written by train-diffusion")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=16, help="number of samples")
    p.add_argument("--steps", type=int, default=32, help="sampling steps (Karras schedule, rho=7)")
    p.add_argument("--sampler", choices=["heun", "euler"], default="heun")
    p.add_argument("--churn", type=float, default=0.0, help="S_churn (Karras et al. 2022, Alg. 2)")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1 = none)")
    p.add_argument("--cond", action="append", metavar="NAME=VALUE",
                   help="raw condition value, e.g. --cond aesthetic=6.5 (repeatable; others: missing)")
    p.add_argument("--prompt", help="caption to condition on (checkpoints trained with a text encoder)")
    p.add_argument("--text-encoder-path", help="where the checkpoint's text encoder lives now, if it moved")
    p.add_argument("--shape", metavar="T,H,W", help="latent frames, height, width (default: the most common "
                                                     "training bucket); T=1 gives images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--autoencoder", metavar="CHECKPOINT",
                   help="decode the samples with this autoencoder: OUT/sample_NNN.mp4 and OUT/contact_sheet.png")
    p.add_argument("--fps", type=float, help="frame rate of the mp4s (default: the training latents' fps)")
    p.add_argument("--codec", choices=["libx264", "mpeg4"], default="libx264", help="mp4 video codec")
    p.add_argument("--spectral-reference", metavar="LATENTS_DIR",
                   help="also write OUT/rapsd.{png,json} (spatial) and OUT/temporal_psd.{png,json}: power spectra "
                        "of these latents, of them noised at several σ (with the noise/signal crossover), and of "
                        "the samples")
    p.set_defaults(func=_cmd_sample)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (python -m training.diffusion.cli ...) for use before the lead wires it in."""
    parser = argparse.ArgumentParser(prog="vidcurate-diffusion")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
