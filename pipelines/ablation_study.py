"""`vidcurate ablation-study`: does curation pay? Three arms, several seeds, intervals, an honest verdict.

Arms (same DiT size, steps, batch size and seeds in each; only the data differs):
  curated  the curated latents;
  random   a random sample of all clips' latents of the curated size (a new draw per seed);
  all      every clip's latents.
Reference: latents of a clean held-out set (`vidcurate heldout-data`: rendered clean, never filtered by us and
never an arm's training set), encoded with the same autoencoder and settings.
Metrics per arm: Fréchet distance and KID on RandomConvFeatures (a fixed, randomly initialised 3-D conv net over
latent windows, training/diffusion/evaluate.py) against the reference, and the defect rate of the samples
decoded to frames and scored with the pipeline's own quality and motion scorers and filter rules, per reason.
Statistics: percentile bootstrap over seeds and samples (training/diffusion/bootstrap.py), paired differences.
Positive control (--planted-fraction, run first; `run_planted`): a set of clean clips of which a known share carry
black frames, in a transparent latent space (training/diffusion/planted.py), trained as "all" and as "curated"
(the clips our rules flag removed); the samples' rate of that defect under our rules must differ ("detected") for
the instrument to be able to see an effect at this budget. It also checks whether the study's autoencoder keeps
the defect at all.
Writes OUT/ablation.json, OUT/ablation.png, OUT/sample_scores.jsonl (every decoded sample's scores and reasons) and
OUT/features.safetensors (the pooled features per arm and of the reference), and prints a table.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from curation.filters import Rule
from curation.sample_defects import applicable_rules, defect_rates, drop_reasons, score_sample, to_uint8_frames
import schemas
from training.diffusion.ablate import sample_arm, subset_latents, train_arm
from training.diffusion.bootstrap import bootstrap, frechet_stat, kid_stat, mean_stat, overlap
from training.diffusion.evaluate import FEATURE_DIM, FEATURE_SEED, RandomConvFeatures
from training.diffusion.train import TrainConfig

ARMS = ("curated", "random", "all")
METRICS = ("frechet", "kid", "defect_rate", "defect_rate_informative")  # lower is better for each
MAX_REFERENCE_RATE = 0.5  # a reason that drops more than this share of the clean reference measures the autoencoder
RESULT_NAME = "ablation.json"


def _rows(latents_dir: str) -> int:
    import schemas

    return schemas.read_table(str(Path(latents_dir) / "latents.parquet"), "latents").num_rows


def _encode_fps(latents_dir: str, default: float = 4.0) -> float:
    """Frames/s of the encoded frames: the encode settings in stats.json, else the table's fps column."""
    stats = json.loads((Path(latents_dir) / "stats.json").read_text())
    fps = (stats.get("settings") or {}).get("fps")
    return float(fps) if fps else default


@torch.no_grad()
def decode_and_score(ae, raw: torch.Tensor, fps: float, rules: list[Rule], quality=None, motion=None,
                     defects=None, batch: int = 4, decode=None) -> list[dict]:
    """Decode raw latents (N, C, T', H', W') with the autoencoder (or `decode`, a function of latents to clips);
    score each clip; rows with their drop reasons."""
    from training.autoencoder.model import decode_video

    decode = decode or (lambda z: decode_video(ae, z))
    rows = []
    for i in range(0, len(raw), batch):
        clips = decode(raw[i:i + batch].float()).clamp(-1, 1).cpu().numpy()  # (n, 3, T, H, W)
        rows += [score_sample(to_uint8_frames(c), fps, quality, motion, defects) for c in clips]
    for row, reasons in zip(rows, drop_reasons(rows, rules)):
        row["drop_reasons"] = reasons
    return rows


def _pipeline_scorers(config: str | None):
    from pipelines.config import load_config
    from pipelines.params import filter_rules, scan_params

    cfg = load_config(config)
    p = scan_params(cfg)
    return filter_rules(cfg), p.quality, p.motion, p.defects


def run_study(curated_dir: str, all_dir: str, reference_dir: str, autoencoder: str, out_dir: str,
              train_cfg: TrainConfig, seeds: tuple[int, ...] = (0, 1, 2), n_samples: int = 64,
              sample_steps: int = 16, n_boot: int = 1000, pipeline_config: str | None = None,
              max_reference_rate: float = MAX_REFERENCE_RATE, planted: PlantedConfig | None = None,
              log=print) -> dict:
    """Train every arm with every seed, sample, score against the reference; write and return OUT/ablation.json.

    With `planted`, the positive control runs first (OUT/planted/, result["planted"]: run_planted) with the same
    rules, and the study's autoencoder is checked on its clips.

    `defect_rate` counts every applicable reason; `defect_rate_informative` only the reasons that drop at most
    max_reference_rate of the clean reference decoded by the same autoencoder (a reason that fires on clean
    clips measures the autoencoder, not the training data; which reasons were left out is in the result).
    """
    from training.autoencoder.model import load_autoencoder
    from training.diffusion.data import LatentDataset

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rules, qp, mp, dp = _pipeline_scorers(pipeline_config)
    on, off = applicable_rules(rules)
    fps = _encode_fps(reference_dir)
    planted_result = None
    if planted is not None:
        planted_result = run_planted(out / "planted", planted, rules, qp, mp, dp, n_boot=n_boot,
                                     autoencoder=autoencoder, log=log)
        log(format_planted(planted_result))
    ae = load_autoencoder(autoencoder)
    ref = LatentDataset(reference_dir, ())
    ae_channels = getattr(ae.config, "latent_channels", None) or getattr(ae.config, "z_dim", None)
    if ae_channels is not None and ref.channels != ae_channels:
        raise ValueError(f"{reference_dir}: windows have {ref.channels} channels, the autoencoder {ae_channels}: "
                         "latents must be (C, T', H', W') windows of this autoencoder")
    ref_norm = ref.mean_windows()  # (M, C, T', H', W'), the reference's normalisation
    feats = RandomConvFeatures(ref.channels)
    ref_f = feats(ref_norm)
    ref_rows = decode_and_score(ae, ref.stats.denormalize(ref_norm), fps, rules, qp, mp, dp)
    size = _rows(curated_dir)
    ref_defects = defect_rates([r["drop_reasons"] for r in ref_rows], rules)
    informative = [k for k, v in ref_defects["by_reason"].items() if v <= max_reference_rate]
    result = {"arms": {}, "reference": {"latents_dir": reference_dir, "windows": len(ref_norm),
                                        "window_shape": list(ref_norm.shape[1:]),
                                        "defects": ref_defects,
                                        "defect_rate_informative": float(np.mean(
                                            [bool(set(r["drop_reasons"]) & set(informative)) for r in ref_rows]))},
              "budget": {"model": train_cfg.model, "steps": train_cfg.steps, "batch_size": train_cfg.batch_size,
                         "samples_seen": train_cfg.steps * train_cfg.batch_size, "seeds": list(seeds),
                         "n_samples_per_seed": n_samples, "sample_steps": sample_steps},
              "features": f"RandomConvFeatures(seed={FEATURE_SEED}, dim={2 * FEATURE_DIM}): a fixed random 3-D conv "
                          "net on latent windows, mean+std pooled; compares runs with each other, not with FVD",
              "defect_scoring": {"fps": fps, "rules": [asdict(r) for r in on],
                                 "not_applicable": sorted({r.reason for r in off}),
                                 "max_reference_rate": max_reference_rate, "informative_reasons": informative,
                                 "autoencoder_limited": sorted(set(ref_defects["by_reason"]) - set(informative))},
              "train_config": asdict(train_cfg)}
    if planted_result is not None:
        result["planted"] = planted_result
    per_arm = {a: {"features": [], "rows": [], "reasons": [], "seeds": []} for a in ARMS}
    # Every arm is drawn from the all-clips folder, so all arms share its normalisation (stats.json): with
    # per-arm statistics an undertrained model's samples would differ by normalisation, not by what it learned.
    curated_ids = set(schemas.read_table(str(Path(curated_dir) / "latents.parquet"), "latents").column("clip_id").to_pylist())
    curated_data = str(subset_latents(all_dir, out / "data" / "curated", clip_ids=curated_ids))
    for arm in ARMS:
        for seed in seeds:
            if arm == "curated":
                data = curated_data
            elif arm == "all":
                data = all_dir
            else:
                data = str(subset_latents(all_dir, out / "data" / f"random_seed{seed}", size, seed))
            log(f"ablation: {arm} seed {seed}: training on {_rows(data)} windows")
            run = train_arm(data, train_cfg, out / arm / f"seed{seed}", seed)
            s = sample_arm(run["checkpoint"], reference_dir, n_samples, sample_steps, seed=seed)
            f = feats(s["normalized"])
            rows = decode_and_score(ae, s["raw"], fps, rules, qp, mp, dp)
            reasons = [r["drop_reasons"] for r in rows]
            per_arm[arm]["features"].append(f)
            per_arm[arm]["rows"] += [{"arm": arm, "seed": seed, "sample": i, **r} for i, r in enumerate(rows)]
            per_arm[arm]["reasons"] += reasons
            per_arm[arm]["seeds"].append({"seed": seed, "windows": _rows(data), **run,
                                          "frechet": frechet_stat(f, ref_f)(np.arange(len(f))),
                                          "kid": kid_stat(f, ref_f)(np.arange(len(f))),
                                          "defects": defect_rates(reasons, rules)})
    sizes = {a: [len(f) for f in per_arm[a]["features"]] for a in ARMS}
    pooled = {a: torch.cat(per_arm[a]["features"]) for a in ARMS}
    stats = {
        "frechet": {a: frechet_stat(pooled[a], ref_f) for a in ARMS},
        "kid": {a: kid_stat(pooled[a], ref_f) for a in ARMS},
        "defect_rate": {a: mean_stat([bool(r) for r in per_arm[a]["reasons"]]) for a in ARMS},
        "defect_rate_informative": {a: mean_stat([bool(set(r) & set(informative)) for r in per_arm[a]["reasons"]])
                                    for a in ARMS},
    }
    for reason in sorted({r.reason for r in on}):
        stats[f"defect_rate:{reason}"] = {a: mean_stat([reason in r for r in per_arm[a]["reasons"]]) for a in ARMS}
    result["metrics"] = {}
    for k, (name, st) in enumerate(stats.items()):
        b = bootstrap(st, sizes, n_boot=n_boot, seed=k)
        for pair, diff in b["differences"].items():
            a1, a2 = pair.split(" - ")
            diff["verdict"] = verdict(b["arms"][a1], b["arms"][a2], a1, a2)
        result["metrics"][name] = b
    for arm in ARMS:
        result["arms"][arm] = {"windows": size if arm != "all" else _rows(all_dir), "seeds": per_arm[arm]["seeds"]}
    result["arms"]["curated"]["latents_dir"], result["arms"]["all"]["latents_dir"] = curated_dir, all_dir
    result["seconds"] = time.perf_counter() - t0
    (out / RESULT_NAME).write_text(json.dumps(result, indent=1, default=float))
    with open(out / "sample_scores.jsonl", "w") as f:  # every decoded sample's scores and reasons, for audit
        for row in [{"arm": "reference", "sample": i, **r} for i, r in enumerate(ref_rows)] + \
                [r for a in ARMS for r in per_arm[a]["rows"]]:
            f.write(json.dumps(row, default=float) + "\n")
    save_file({"reference": ref_f.contiguous(), **{a: pooled[a].contiguous() for a in ARMS}},
              str(out / "features.safetensors"))
    plot(result, out / "ablation.png")
    return result


# ---------------------------------------------------------------------------------------- the planted arm
PLANTED_REASONS = {"black": ("black_frames", "dark"), "dim": ("dark",)}  # the rules that flag each planted defect


@dataclass
class PlantedConfig:
    """The positive control: `clips` clean clips (defect-corpus pan shots, `frames` x `size` px at `fps`), of
    which `fraction` carry `defect`, in the thumbnail codec's latent space (training/diffusion/planted.py).
    The DiT recipe is its own (a higher lr and a short EMA suit a few hundred steps); every arm and seed the same."""
    fraction: float = 0.3
    clips: int = 96
    defect: str = "black"
    frames: int = 5
    size: int = 64
    fps: float = 8.0
    codec_factor: int = 16  # 64 px -> 4x4 latent cells of RGB means
    data_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    n_samples: int = 32
    sample_steps: int = 16
    model: str = "tiny"
    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-3
    ema_decay: float = 0.98
    threads: int = 1  # torch threads while it runs: at this size a second thread costs more than it gives

    def train_config(self) -> TrainConfig:
        return TrainConfig(model=self.model, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           ema_decay=self.ema_decay, conditions=(), progress=False, log_every=50,
                           ckpt_every=self.steps)


def planted_clips(cfg: PlantedConfig) -> tuple[np.ndarray, np.ndarray]:
    """(clips (N, T, H, W, 3) uint8, planted (N,) bool): clean pan/zoom shots of the defect corpus, the planted
    share with the defect applied (exactly round(fraction·N), at random)."""
    from curation.defect_corpus import shot
    from training.diffusion.planted import plant_defect, planted_mask

    rng = np.random.default_rng(cfg.data_seed)
    clips = [np.stack(shot(rng, cfg.frames, "zoom" if rng.random() < 0.3 else "pan", (cfg.size, cfg.size))[0])
             for _ in range(cfg.clips)]
    mask = planted_mask(cfg.clips, cfg.fraction, cfg.data_seed)
    return np.stack([plant_defect(c, cfg.defect) if m else c for c, m in zip(clips, mask)]), mask


def planted_verdict(all_ci: dict, curated_ci: dict) -> str:
    """"detected" when the 95% intervals do not overlap and "all" (trained with the defect) is higher,
    "reversed" when they do not overlap the other way, else "inconclusive". run_planted asks it of the
    bootstrap and of the Wilson intervals and says "detected" only when both do."""
    if overlap(all_ci, curated_ci):
        return "inconclusive"
    return "detected" if all_ci["lo"] > curated_ci["hi"] else "reversed"


def wilson(k: int, n: int, z: float = 1.96) -> dict:
    """Wilson score interval of a proportion k/n (Wilson 1927): {"mean", "lo", "hi"}."""
    if n == 0:
        return {"mean": float("nan"), "lo": 0.0, "hi": 1.0}
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"mean": p, "lo": float(max(0.0, centre - half)), "hi": float(min(1.0, centre + half))}


def smallest_detectable(base_k: int, n: int) -> float:
    """The smallest rise of a rate over base_k/n (n samples per arm) whose Wilson interval clears the base's:
    the instrument's resolution if samples were independent (seeds add spread; the bootstrap shows it)."""
    hi = wilson(base_k, n)["hi"]
    k = next((k for k in range(base_k, n + 1) if wilson(k, n)["lo"] > hi), None)
    return float("nan") if k is None else (k - base_k) / n


@torch.no_grad()
def autoencoder_keeps_defect(autoencoder: str, clips: np.ndarray, mask: np.ndarray, fps: float, rules, qp, mp, dp,
                             reasons: tuple[str, ...], limit: int = 16) -> dict:
    """Do the planted clips still read as defective after the study's autoencoder (encode, decode)? Share of
    planted and of clean clips (up to `limit` of each) flagged for the planted reasons."""
    from training.autoencoder.model import encode_video, load_autoencoder
    from training.diffusion.planted import to_unit_range

    ae = load_autoencoder(autoencoder)
    out = {}
    for name, sel in (("planted", mask), ("clean", ~mask)):
        x = to_unit_range(clips[np.flatnonzero(sel)[:limit]])
        if not len(x):
            continue
        raw = torch.cat([encode_video(ae, x[i:i + 4])[0] for i in range(0, len(x), 4)])
        rows = decode_and_score(ae, raw, fps, rules, qp, mp, dp)
        out[f"{name}_flagged"] = float(np.mean([bool(set(r["drop_reasons"]) & set(reasons)) for r in rows]))
        out[f"{name}_by_reason"] = {k: float(np.mean([k in r["drop_reasons"] for r in rows])) for k in reasons}
        out[f"{name}_clips"] = len(rows)
    return {"autoencoder": str(autoencoder), **out}


def run_planted(out_dir: str | Path, cfg: PlantedConfig, rules: list[Rule], quality=None, motion=None, defects=None,
                n_boot: int = 1000, autoencoder: str | None = None, log=print) -> dict:
    """The positive control: train "all" (planted clips in) and "curated" (the clips our rules flag for the
    planted defect removed) with every seed, sample, decode, score; rates with 95% intervals and the verdict.

    Writes OUT/data/{all,curated} (latents; planted.json holds the truth), OUT/<arm>/seed<k>/ (checkpoints) and
    OUT/sample_scores.jsonl; returns the result (run_study puts it under "planted")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run_planted(Path(out_dir), cfg, rules, quality, motion, defects, n_boot, autoencoder, log)
    finally:
        torch.set_num_threads(threads)


def _run_planted(out: Path, cfg: PlantedConfig, rules, quality, motion, defects, n_boot, autoencoder, log) -> dict:
    from training.diffusion.data import LatentDataset
    from training.diffusion.planted import ThumbnailCodec, write_planted_latents

    t0 = time.perf_counter()
    reasons = PLANTED_REASONS[cfg.defect]
    clips, mask = planted_clips(cfg)
    codec = ThumbnailCodec(cfg.codec_factor)
    all_dir = write_planted_latents(out / "data" / "all", clips, mask, codec, cfg.fps, cfg.defect)
    data = LatentDataset(str(all_dir), ())
    train_rows = decode_and_score(None, data.stats.denormalize(data.mean_windows()), cfg.fps, rules, quality,
                                  motion, defects, decode=codec.decode)
    flagged = np.array([bool(set(r["drop_reasons"]) & set(reasons)) for r in train_rows])
    ids = [r["clip_id"] for r in data.rows]
    curated_dir = subset_latents(all_dir, out / "data" / "curated", clip_ids={i for i, f in zip(ids, flagged) if not f})
    result = {"defect": cfg.defect, "reasons": list(reasons), "config": asdict(cfg),
              "codec": codec.to_dict(),
              "training_set": {"clips": len(mask), "planted": int(mask.sum()), "planted_fraction": float(mask.mean()),
                               "flagged_by_rules": int(flagged.sum()), "flagged_fraction": float(flagged.mean()),
                               "recall": float(flagged[mask].mean()) if mask.any() else None,
                               "false_flags": int((flagged & ~mask).sum())},
              "arms": {}}
    flags, scored = {"curated": [], "all": []}, []
    for arm, arm_dir in (("curated", curated_dir), ("all", all_dir)):
        for seed in cfg.seeds:
            log(f"ablation (planted): {arm} seed {seed}: training on {_rows(arm_dir)} windows")
            run = train_arm(arm_dir, cfg.train_config(), out / arm / f"seed{seed}", seed)
            s = sample_arm(run["checkpoint"], all_dir, cfg.n_samples, cfg.sample_steps, seed=seed)
            rows = decode_and_score(None, s["raw"], cfg.fps, rules, quality, motion, defects, decode=codec.decode)
            f = [bool(set(r["drop_reasons"]) & set(reasons)) for r in rows]
            flags[arm].append(f)
            scored += [{"arm": arm, "seed": seed, "sample": i, **r} for i, r in enumerate(rows)]
            result["arms"].setdefault(arm, {"windows": _rows(arm_dir), "seeds": []})["seeds"].append(
                {"seed": seed, "defect_rate": float(np.mean(f)), **{k: v for k, v in run.items() if k != "checkpoint"}})
    b = bootstrap({a: mean_stat(np.concatenate(flags[a])) for a in flags},
                  {a: [len(f) for f in flags[a]] for a in flags}, n_boot=n_boot, seed=len(cfg.seeds))
    n = {a: sum(len(f) for f in flags[a]) for a in flags}
    k = {a: int(sum(sum(f) for f in flags[a])) for a in flags}
    result["defect_rate"] = {a: {**b["arms"][a], "wilson": wilson(k[a], n[a]), "samples": n[a], "defective": k[a]}
                             for a in flags}
    result["difference"] = {"all - curated": b["differences"]["curated - all"] | {
        "mean": -b["differences"]["curated - all"]["mean"], "lo": -b["differences"]["curated - all"]["hi"],
        "hi": -b["differences"]["curated - all"]["lo"]}}
    # both kinds of interval must separate: the bootstrap carries the spread over seeds, Wilson the binomial floor
    # (a bootstrap of 0 defects in n samples is [0, 0], however small n is)
    result["verdicts"] = {"bootstrap": planted_verdict(b["arms"]["all"], b["arms"]["curated"]),
                          "wilson": planted_verdict(result["defect_rate"]["all"]["wilson"],
                                                    result["defect_rate"]["curated"]["wilson"])}
    agreed = set(result["verdicts"].values())
    result["verdict"] = agreed.pop() if len(agreed) == 1 else "inconclusive"
    mde = smallest_detectable(k["curated"], n["curated"])
    transfer = result["defect_rate"]["all"]["mean"] / max(result["training_set"]["planted_fraction"], 1e-9)
    result["resolution"] = {
        "smallest_detectable_rate_rise": mde,
        "transfer": transfer,
        "smallest_detectable_planted_fraction": mde / transfer if transfer > 0 else None,
        "how": "Wilson intervals at this many samples per arm (independent samples assumed) from the curated "
               "arm's rate; divided by transfer (the all arm's sample defect rate per planted fraction) for the "
               "share of defective training clips that would just be detected; bench --planted sweeps it"}
    if autoencoder:
        result["study_autoencoder"] = autoencoder_keeps_defect(autoencoder, clips, mask, cfg.fps, rules, quality,
                                                               motion, defects, reasons)
    result["seconds"] = time.perf_counter() - t0
    with open(out / "sample_scores.jsonl", "w") as f:
        for row in scored:
            f.write(json.dumps(row, default=float) + "\n")
    return result


def format_planted(p: dict) -> str:
    """The positive control in a few lines: training set, rate per arm [95% CI], verdict, resolution."""
    ts, r = p["training_set"], p["defect_rate"]
    lines = [f"positive control: {ts['planted']}/{ts['clips']} training clips planted '{p['defect']}' "
             f"({ts['planted_fraction']:.0%}); our rules flag {ts['flagged_by_rules']} (recall "
             f"{ts['recall'] if ts['recall'] is None else round(ts['recall'], 3)}, {ts['false_flags']} false), "
             f"removed in 'curated'",
             f"  sample defect rate ({'/'.join(p['reasons'])}), 95% bootstrap CI over "
             f"{len(p['config']['seeds'])} seeds x {p['config']['n_samples']} samples:"]
    for arm in ("curated", "all"):
        lines.append(f"    {arm:<8} {_ci(r[arm])}   Wilson [{r[arm]['wilson']['lo']:.3g}, {r[arm]['wilson']['hi']:.3g}]")
    d = p["difference"]["all - curated"]
    lines.append(f"    all - curated {_ci(d)}  ->  {p['verdict'].upper()} (bootstrap {p['verdicts']['bootstrap']}, "
                 f"Wilson {p['verdicts']['wilson']})")
    res = p["resolution"]
    lines.append(f"  resolution: a rise of {res['smallest_detectable_rate_rise']:.3g} in the sample rate "
                 f"(~{res['smallest_detectable_planted_fraction'] or float('nan'):.2g} of training clips defective)")
    if "study_autoencoder" in p:
        sa = p["study_autoencoder"]
        lines.append(f"  the study's autoencoder (encode, decode): planted clips still flagged "
                     f"{sa.get('planted_flagged', float('nan')):.0%}, clean {sa.get('clean_flagged', float('nan')):.0%}"
                     + "".join(f"; {k}: {sa.get('planted_by_reason', {}).get(k, float('nan')):.0%} vs "
                               f"{sa.get('clean_by_reason', {}).get(k, float('nan')):.0%}" for k in p["reasons"]))
    return "\n".join(lines)


def verdict(a: dict, b: dict, name_a: str, name_b: str) -> str:
    """"inconclusive" when the two 95% intervals overlap, else which arm is lower (better)."""
    if overlap(a, b):
        return "inconclusive"
    return f"{name_a} lower" if a["hi"] < b["lo"] else f"{name_b} lower"


def format_table(result: dict) -> str:
    """The positive control (if run), then mean [95% CI] per arm and metric, then the differences with their CI
    and verdict."""
    lines = [format_planted(result["planted"]), ""] if "planted" in result else []
    lines.append(f"{'metric':<28}" + "".join(f"{a:>28}" for a in ARMS))
    for name, m in result["metrics"].items():
        cells = "".join(f"{_ci(m['arms'][a]):>28}" for a in ARMS)
        lines.append(f"{name:<28}{cells}")
    ref = result["reference"]["defects"]
    lines.append(f"reference (clean held-out, decoded) defect rate: {ref['dropped']:.3f}  "
                 + ", ".join(f"{k}={v:.3f}" for k, v in ref["by_reason"].items()))
    limited = result["defect_scoring"]["autoencoder_limited"]
    lines.append("defect_rate_informative leaves out " + (", ".join(limited) if limited else "nothing")
                 + f" (drops > {result['defect_scoring']['max_reference_rate']:.0%} of the clean reference)")
    lines.append("")
    lines.append(f"{'difference':<28}{'pair':<18}{'mean [95% CI]':>30}  verdict")
    for name, m in result["metrics"].items():
        for pair, d in m["differences"].items():
            lines.append(f"{name:<28}{pair:<18}{_ci(d):>30}  {d['verdict']}")
    return "\n".join(lines)


def _ci(d: dict) -> str:
    return f"{d['mean'] + 0.0:.4g} [{d['lo'] + 0.0:.4g}, {d['hi'] + 0.0:.4g}]"  # + 0.0: no "-0"


def plot(result: dict, path: Path) -> None:
    """One panel per headline metric: each arm's mean with its 95% CI; the reference's defect rate dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.0 * len(METRICS), 3))
    for ax, name in zip(axes, METRICS):
        m = result["metrics"][name]["arms"]
        mean = [m[a]["mean"] for a in ARMS]
        err = [[m[a]["mean"] - m[a]["lo"] for a in ARMS], [m[a]["hi"] - m[a]["mean"] for a in ARMS]]
        ax.errorbar(range(len(ARMS)), mean, yerr=np.maximum(err, 0), fmt="o", capsize=4)
        ax.set_xticks(range(len(ARMS)), ARMS)
        ax.set_title(name + " (lower is better)", fontsize=9)
        if name.startswith("defect_rate"):
            ref = result["reference"]
            level = ref["defects"]["dropped"] if name == "defect_rate" else ref["defect_rate_informative"]
            ax.axhline(level, ls="--", c="grey", lw=1, label="clean reference")
            ax.legend(fontsize=7)
    fig.suptitle(f"{len(result['budget']['seeds'])} seeds x {result['budget']['n_samples_per_seed']} samples, "
                 f"95% bootstrap CI", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------- CLI
def _cmd_study(args) -> int:
    from training.cli_checks import require
    from training.diffusion.cli import _train_config

    for flag in ("curated", "all", "reference", "autoencoder", "pipeline_config"):
        if getattr(args, flag):
            require(getattr(args, flag), f"--{flag.replace('_', '-')}")
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise SystemExit(f"ablation-study: --seeds wants comma-separated integers, got {args.seeds!r}") from None
    if len(seeds) < 2:
        raise SystemExit("ablation-study: give at least 2 seeds (--seeds 0,1,2); intervals need them")
    try:
        result = run_study(args.curated, args.all, args.reference, args.autoencoder, args.out,
                           _train_config(args, out_dir=args.out), seeds=seeds, n_samples=args.n_samples,
                           sample_steps=args.sample_steps, n_boot=args.bootstrap,
                           pipeline_config=args.pipeline_config, max_reference_rate=args.max_reference_rate,
                           planted=_planted_config(args, seeds))
    except (ValueError, FileNotFoundError) as e:  # wrong latents layout, too few windows, a missing folder
        raise SystemExit(f"ablation-study: {e}") from None
    print(format_table(result))
    print(f"wrote {Path(args.out) / RESULT_NAME} and {Path(args.out) / 'ablation.png'}")
    return 0


def _planted_config(args, seeds: tuple[int, ...]) -> PlantedConfig | None:
    """The --planted-* options as a PlantedConfig (None without --planted-fraction); the study's seeds."""
    if args.planted_fraction is None:
        return None
    if not 0 < args.planted_fraction <= 1:
        raise SystemExit(f"ablation-study: --planted-fraction must be in (0, 1], got {args.planted_fraction}")
    return PlantedConfig(fraction=args.planted_fraction, clips=args.planted_clips, steps=args.planted_steps,
                         n_samples=args.planted_samples, seeds=seeds)


def write_heldout(out_dir: str, count: int = 24, seed: int = 1000) -> dict:
    """Render `count` clean one-shot videos and OUT/clips.parquet: one whole-video clip per file, from the
    generator's truth (not from our shot detector or filters), the manifest `vidcurate encode --table clips` reads."""
    import hashlib

    import schemas
    from curation import ids
    from curation.defect_corpus import write_defect_corpus

    truth = write_defect_corpus(out_dir, count=count, seed=seed, weights={"clean": 1}, copies=False)
    rows = []
    for name, v in sorted(truth["videos"].items()):
        path = Path(out_dir) / name
        vid = ids.video_id(hashlib.sha256(path.read_bytes()).hexdigest(), name)
        n, fps = int(v["frames"]), float(v["fps"])
        rows.append({"clip_id": ids.clip_id(vid, 0, n), "video_id": vid, "uri": str(path.resolve()), "clip_index": 0,
                     "start_frame": 0, "end_frame": n, "num_frames": n, "start_s": 0.0, "end_s": n / fps,
                     "duration_s": n / fps, "fps": fps, "width": int(v["size"][0]), "height": int(v["size"][1]),
                     "split_reason": "whole", "drop_reasons": [], "kept": True})
    table = schemas.table_from_rows(rows, schemas.TABLES["clips"], "clips")
    schemas.write_table(table, "clips", str(Path(out_dir) / "clips.parquet"))
    return truth


def _cmd_heldout(args) -> int:
    truth = write_heldout(args.out, args.count, args.seed)
    print(f"wrote {len(truth['videos'])} clean held-out videos (seed {args.seed}), ground_truth.json and "
          f"clips.parquet (encode it with --manifest {Path(args.out) / 'clips.parquet'} --table clips) to {args.out}")
    return 0


def add_parsers(subparsers) -> None:
    """Add `ablation-study` and `heldout-data` to the vidcurate subcommands."""
    from training.diffusion.cli import _add_train_options

    p = subparsers.add_parser("ablation-study", help="curated vs random-same-size vs all clips, several seeds, CIs",
                              description="Train the same DiT with the same budget on three arms and several seeds; "
                                          "Fréchet/KID against a clean held-out reference and the defect rate of "
                                          "decoded samples under the pipeline's filters, with bootstrap CIs. "
                                          "Writes OUT/ablation.json and OUT/ablation.png.")
    p.add_argument("--curated", required=True, help="latents folder of the curated clips")
    p.add_argument("--all", required=True, help="latents folder of all clips (the random arm samples from it)")
    p.add_argument("--reference", required=True, help="latents folder of a clean held-out set (same autoencoder)")
    p.add_argument("--autoencoder", required=True, help="the autoencoder checkpoint the latents were encoded with")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training/sampling seeds (default 0,1,2)")
    p.add_argument("--n-samples", type=int, default=64, help="samples per arm and seed")
    p.add_argument("--sample-steps", type=int, default=16, help="Heun sampling steps")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws")
    p.add_argument("--pipeline-config", help="YAML of the curation run (its filter rules and scorer settings)")
    p.add_argument("--max-reference-rate", type=float, default=MAX_REFERENCE_RATE,
                   help="defect_rate_informative leaves out reasons that drop more than this share of the clean "
                        "reference (they measure the autoencoder; default 0.5)")
    d = PlantedConfig()
    p.add_argument("--planted-fraction", type=float,
                   help="also run the positive control first: a set of this share of clips with black frames "
                        "(e.g. 0.3), 'all' vs 'curated' by our rules; its verdict goes into ablation.json")
    p.add_argument("--planted-clips", type=int, default=d.clips, help=f"clips of the planted set (default {d.clips})")
    p.add_argument("--planted-steps", type=int, default=d.steps,
                   help=f"DiT steps per planted arm and seed (default {d.steps}; batch {d.batch_size}, lr {d.lr}, "
                        f"EMA {d.ema_decay})")
    p.add_argument("--planted-samples", type=int, default=d.n_samples,
                   help=f"samples per planted arm and seed (default {d.n_samples})")
    _add_train_options(p)
    p.set_defaults(func=_cmd_study)

    h = subparsers.add_parser("heldout-data", help="write a clean held-out video set (the ablation's reference)",
                              description="Render COUNT clean defect-corpus videos (one shot, no defect, no copies) "
                                          "with SEED (use one the training corpus does not use) and OUT/clips.parquet, "
                                          "one whole-video clip per file, for `vidcurate encode --table clips`.")
    h.add_argument("out", metavar="OUT")
    h.add_argument("--count", type=int, default=24, help="videos (default 24)")
    h.add_argument("--seed", type=int, default=1000, help="corpus seed (default 1000)")
    h.set_defaults(func=_cmd_heldout)
