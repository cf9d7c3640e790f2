"""The ablation study: bootstrap intervals on known data, the defect scoring of decoded samples, and a tiny
end-to-end run (three arms, two seeds) on toy latents through a random 2-D autoencoder."""
import json

import numpy as np
import pytest
import torch

from curation.filters import Rule
from curation.sample_defects import defect_rates, drop_reasons, score_sample, to_uint8_frames
from pipelines.cli import main as cli_main
from training.diffusion.bootstrap import bootstrap, frechet_stat, kid_stat, mean_stat
from training.diffusion.toy import write_gmm_latents

torch.set_num_threads(1)
RULES = [Rule("motion", 0.002, None, "static"), Rule("motion", None, 0.25, "too_much_motion"),
         Rule("sharpness", 2.5, None, "blurry"), Rule("luma_mean", 30.0, None, "dark"),
         Rule("black_frac", None, 0.5, "black_frames"), Rule("duration_s", 1.0, None, "too_short")]


def _arm(mean, seeds=3, n=300, rng=None):
    return [rng.normal(mean, 1.0, n) for _ in range(seeds)]


def test_bootstrap_ci_and_difference_on_known_data():
    rng = np.random.default_rng(0)
    arms = {"low": _arm(0.0, rng=rng), "high": _arm(0.5, rng=rng), "twin": _arm(0.0, rng=rng)}
    b = bootstrap({a: mean_stat(np.concatenate(v)) for a, v in arms.items()},
                  {a: [len(s) for s in v] for a, v in arms.items()}, n_boot=400, seed=0)
    for name, true in (("low", 0.0), ("high", 0.5), ("twin", 0.0)):
        ci = b["arms"][name]
        assert ci["lo"] < true < ci["hi"] and ci["hi"] - ci["lo"] < 0.3  # 900 samples: SE ≈ 0.033
    d = b["differences"]["low - high"]
    assert d["hi"] < 0 and d["excludes_zero"] and abs(d["mean"] + 0.5) < 0.15
    assert not b["differences"]["low - twin"]["excludes_zero"]
    with pytest.raises(ValueError, match="same number of seeds"):
        bootstrap({"a": mean_stat(np.zeros(4)), "b": mean_stat(np.zeros(2))}, {"a": [2, 2], "b": [2]})


def test_seed_variation_widens_the_interval():
    """Samples that agree within each seed but not across seeds: the interval reflects the seeds, not n."""
    rng = np.random.default_rng(1)
    vals = np.concatenate([np.full(500, m) + rng.normal(0, 0.01, 500) for m in (0.0, 1.0, 2.0)])
    ci = bootstrap({"a": mean_stat(vals)}, {"a": [500] * 3}, n_boot=300)["arms"]["a"]
    assert ci["hi"] - ci["lo"] > 0.8  # a sample-only bootstrap would give ~0.002


def test_feature_distances_grow_with_a_shift():
    g = torch.Generator().manual_seed(0)
    ref, same, shifted = (torch.randn(200, 8, generator=g) for _ in range(3))
    shifted += 1.0
    idx = np.arange(200)
    assert frechet_stat(same, ref)(idx) < 1.0 < frechet_stat(shifted, ref)(idx)
    assert abs(kid_stat(same, ref)(idx)) < 0.1 * kid_stat(shifted, ref)(idx)


def _texture(h=96, w=160, seed=0):
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(30, 225, (h // 4, w // 4, 3)), np.ones((4, 4, 1))).astype(np.uint8)


def test_sample_defect_scoring():
    tex = _texture()
    moving = np.stack([tex[:64, 2 * t:2 * t + 64] for t in range(6)])  # a pan of 2 px/frame, sharp
    blurry = np.stack([np.full((64, 64, 3), 120, np.uint8) + (t % 2) for t in range(6)])  # flat and still
    black = np.zeros((6, 64, 64, 3), np.uint8)
    rows = [score_sample(x, fps=4.0) for x in (moving, blurry, black)]
    reasons = drop_reasons(rows, RULES)
    assert reasons[0] == [], rows[0]
    assert "blurry" in reasons[1] and "static" in reasons[1]
    assert "black_frames" in reasons[2] and "dark" in reasons[2]
    rates = defect_rates(reasons, RULES)
    assert rates["dropped"] == pytest.approx(2 / 3) and rates["by_reason"]["blurry"] == pytest.approx(2 / 3)
    assert "too_short" not in rates["by_reason"]  # duration is not a picture score
    clip = torch.from_numpy(moving).permute(3, 0, 1, 2).float() / 127.5 - 1  # (3, T, H, W) in [-1, 1]
    assert np.abs(to_uint8_frames(clip.numpy()).astype(int) - moving).max() <= 1


DEFECT_RULES = [Rule("content_frac", 0.35, None, "letterbox"), Rule("fade_frac", None, 0.3, "fade"),
                Rule("flicker", None, 0.05, "flicker"), Rule("shake", None, 0.006, "shaky"),
                Rule("blockiness", None, 1.25, "blocky_grid")]  # pipelines/configs/default.yaml


def _smooth(h, w, seed=0):
    """Smooth random RGB texture (no 8 px structure), 8 px larger than (h, w) for the pan and the jitter."""
    import cv2

    small = np.random.default_rng(seed).uniform(40, 215, (h // 6 + 3, w // 6 + 3, 3)).astype(np.float32)
    return cv2.resize(small, (w + 8, h + 8), interpolation=cv2.INTER_CUBIC).clip(0, 255)


def _shot(side, t_len, kind, seed=0):
    """(T, side, side, 3) uint8: a slow pan of a smooth texture, with one defect applied."""
    tex, rng = _smooth(side, side, seed), np.random.default_rng(seed)
    frames = []
    for t in range(t_len):
        dy, dx = (rng.integers(-2, 3, 2) + 2) if kind == "shake" else (2, t)  # else a pan of 1 px/frame
        f = tex[dy:dy + side, dx:dx + side].copy()
        if kind == "flicker":
            f *= 1.0 + 0.3 * (t % 2)
        if kind == "fade":
            f *= max(0.0, 1.0 - t / (t_len - 2))  # the last two frames black
        if kind == "bars":  # an inset picture: a quarter of the frame inside black bars
            f[:side // 4], f[-(side // 4):], f[:, :side // 4], f[:, -(side // 4):] = 0, 0, 0, 0
        if kind == "blocky":  # each 8x8 tile its mean: a DC-only coder, on the frame's grid
            f = f.reshape(side // 8, 8, side // 8, 8, 3).mean(axis=(1, 3), keepdims=True).repeat(8, 1).repeat(8, 3)
            f = f.reshape(side, side, 3)
        frames.append(f.clip(0, 255).astype(np.uint8))
    return np.stack(frames)


def test_sample_defect_rules_apply_to_tiny_samples():
    """Every picture-defect rule of the curation fires on its defect in a 64 px, 9 frame sample, and not on a clean one."""
    kinds = {"clean": 16.0, "flicker": 16.0, "shake": 16.0, "fade": 8.0, "bars": 16.0, "blocky": 16.0}
    rows = {k: score_sample(_shot(64, 9, k), fps) for k, fps in kinds.items()}
    assert all(v is not None for v in (rows["clean"][c] for c in ("fade_frac", "flicker", "shake", "blockiness")))
    reasons = dict(zip(rows, drop_reasons(list(rows.values()), DEFECT_RULES)))
    assert reasons == {"clean": [], "flicker": ["flicker"], "shake": ["shaky"], "fade": ["fade"],
                       "bars": ["letterbox"], "blocky": ["blocky_grid"]}, {k: {c: r[c] for c in (
                           "content_frac", "fade_frac", "flicker", "shake", "blockiness")} for k, r in rows.items()}


def test_sample_defect_scores_are_null_where_the_sample_is_too_small():
    # blockiness: fewer than 8 blocks each way, or a frame that is not whole 8x8 blocks
    for side in (32, 56):
        assert score_sample(_shot(side, 9, "blocky"), 16.0)["blockiness"] is None
    assert score_sample(_shot(64, 9, "blocky")[:, :60, :60], 16.0)["blockiness"] is None
    # shake: at 8 fps the 0.3 s window is 3 frames, which a quadratic fits exactly; at 16 fps 5 frames
    # need 6 shifts
    assert score_sample(_shot(64, 9, "shake"), 8.0)["shake"] is None
    assert score_sample(_shot(64, 5, "shake"), 16.0)["shake"] is None
    # fade: 5 frames at 25 fps are shorter than a 0.3 s ramp; flicker needs 3 frames
    short = score_sample(_shot(64, 5, "fade"), 25.0)
    assert short["fade_frac"] is None and short["flicker"] is not None
    assert score_sample(_shot(64, 2, "clean"), 16.0)["flicker"] is None
    # a rule never fails on null: the blocky 32 px sample is kept by the blocky rule
    assert drop_reasons([score_sample(_shot(32, 9, "blocky"), 16.0)], DEFECT_RULES) == [[]]


def test_study_end_to_end(tmp_path, capsys, autoencoder):
    kw = dict(frames=3, shape=(2, 8, 8))
    curated = write_gmm_latents(tmp_path / "curated", n_clips=8, **kw)
    everything = write_gmm_latents(tmp_path / "all", n_clips=8, junk_fraction=1.0, **kw)
    reference = write_gmm_latents(tmp_path / "reference", n_clips=6, seed=5, **kw)
    out = tmp_path / "study"
    assert cli_main(["ablation-study", "--curated", str(curated), "--all", str(everything), "--reference",
                     str(reference), "--autoencoder", str(autoencoder), "--out", str(out), "--seeds", "0,1",
                     "--n-samples", "3", "--sample-steps", "2", "--bootstrap", "30", "--steps", "2",
                     "--batch-size", "4", "--no-progress", "--planted-fraction", "0.3", "--planted-clips", "10",
                     "--planted-steps", "2", "--planted-samples", "2"]) == 0
    printed = capsys.readouterr().out
    assert "defect_rate" in printed and "curated - random" in printed
    assert printed.index("positive control: 3/10") < printed.index("curated - random")  # the control comes first
    r = json.loads((out / "ablation.json").read_text())
    p = r["planted"]
    assert p["training_set"]["planted"] == 3 and p["verdict"] in ("detected", "inconclusive", "reversed")
    assert set(p["defect_rate"]) == {"curated", "all"} and p["study_autoencoder"]["planted_clips"] == 3
    assert r["arms"]["curated"]["windows"] == r["arms"]["random"]["windows"] == 8 and r["arms"]["all"]["windows"] == 16
    assert [s["seed"] for s in r["arms"]["random"]["seeds"]] == [0, 1]
    for name in ("frechet", "kid", "defect_rate", "defect_rate_informative"):
        m = r["metrics"][name]
        assert set(m["arms"]) == {"curated", "random", "all"}
        for ci in m["arms"].values():
            assert ci["lo"] <= ci["hi"] and np.isfinite(ci["mean"])
        assert all(d["verdict"] in ("inconclusive", "curated lower", "random lower", "all lower")
                   for d in m["differences"].values())
    assert 0 <= r["reference"]["defects"]["dropped"] <= 1 and "too_short" in r["defect_scoring"]["not_applicable"]
    ds = r["defect_scoring"]  # every applicable reason is either informative or autoencoder-limited
    assert sorted(ds["informative_reasons"] + ds["autoencoder_limited"]) == sorted(r["reference"]["defects"]["by_reason"])
    assert (out / "ablation.png").stat().st_size > 0 and (out / "features.safetensors").exists()
    scored = [json.loads(line) for line in (out / "sample_scores.jsonl").read_text().splitlines()]
    assert len(scored) == 6 + 3 * 2 * 3 and {s["arm"] for s in scored} == {"reference", "curated", "random", "all"}


def test_heldout_set_is_clean_and_encodable(tmp_path):
    """The reference: clean one-shot videos and a clips manifest the encoder reads (one whole clip per file)."""
    from pipelines.ablation_study import write_heldout
    from training.autoencoder.encode import manifest_rows

    truth = write_heldout(str(tmp_path / "h"), count=2, seed=1000)
    assert {v["kind"] for v in truth["videos"].values()} == {"clean"} and len(truth["videos"]) == 2
    rows = manifest_rows(str(tmp_path / "h" / "clips.parquet"), "clips")
    assert len(rows) == 2 and all(r["start_frame"] == 0 and r["end_frame"] > 25 for r in rows)


def test_subset_latents(tmp_path):
    """A random arm draws n windows without replacement, seeded; by clip ids it selects those clips' windows."""
    from training.diffusion.ablate import subset_latents
    from training.diffusion.data import LatentDataset

    src = write_gmm_latents(tmp_path / "src", n_clips=10, frames=2)
    a, b = (LatentDataset(str(subset_latents(src, tmp_path / d, 4, seed=3))) for d in ("a", "b"))
    ids = [r["clip_id"] for r in a.rows]
    assert len(set(ids)) == 4 and ids == [r["clip_id"] for r in b.rows] and a.mean_windows().shape[0] == 4
    c = LatentDataset(str(subset_latents(src, tmp_path / "c", clip_ids={"clip00001", "clip00007"})))
    assert sorted(r["clip_id"] for r in c.rows) == ["clip00001", "clip00007"]
    with pytest.raises(ValueError, match="cannot draw"):
        subset_latents(src, tmp_path / "d", 11, seed=0)


def test_planted_verdict_and_intervals():
    """The positive control's verdict: separated intervals are "detected" (all higher) or "reversed", overlapping
    ones "inconclusive"; Wilson's interval and the resolution by hand."""
    from pipelines.ablation_study import planted_verdict, smallest_detectable, wilson

    lo, hi = {"mean": 0.02, "lo": 0.0, "hi": 0.05}, {"mean": 0.2, "lo": 0.12, "hi": 0.28}
    assert planted_verdict(hi, lo) == "detected"
    assert planted_verdict(lo, hi) == "reversed"
    assert planted_verdict({"mean": 0.08, "lo": 0.04, "hi": 0.12}, lo) == "inconclusive"  # 0.04 < 0.05: overlap
    assert planted_verdict(lo, dict(lo)) == "inconclusive"
    w = wilson(0, 96)  # (z²/n) / (1 + z²/n) = 3.8416 / 99.8416
    assert w["lo"] == 0 and w["hi"] == pytest.approx(3.8416 / 99.8416, rel=1e-6)
    w = wilson(30, 100)
    assert w["lo"] < 0.3 < w["hi"] and w["hi"] - w["lo"] == pytest.approx(0.177, abs=0.005)
    k = round(smallest_detectable(0, 96) * 96)  # the first k/96 whose lower bound clears 0/96's upper one
    assert wilson(k, 96)["lo"] > wilson(0, 96)["hi"] >= wilson(k - 1, 96)["lo"]


def test_thumbnail_codec_and_planting():
    from training.diffusion.planted import ThumbnailCodec, plant_defect, planted_mask, to_unit_range

    codec = ThumbnailCodec(16)
    flat = torch.full((2, 3, 5, 64, 64), 0.25)
    z = codec.encode(flat)
    assert z.shape == (2, 3, 5, 4, 4) and torch.allclose(codec.decode(z), flat)
    clip = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    black = to_unit_range(plant_defect(clip, "black")[None])
    assert torch.all(codec.decode(codec.encode(black)) == -1)
    m = planted_mask(40, 0.3, seed=1)
    assert m.sum() == 12 and not np.array_equal(m, planted_mask(40, 0.3, seed=2))
    with pytest.raises(ValueError, match="unknown planted defect"):
        plant_defect(clip, "smudge")


def test_planted_arm_end_to_end(tmp_path):
    """A tiny positive control: the planted share is exact, our rules find every planted clip and nothing else,
    "curated" trains without them, and the result has every field the report and the bench read."""
    from pipelines.ablation_study import PlantedConfig, format_planted, run_planted
    from training.diffusion.data import LatentDataset

    cfg = PlantedConfig(fraction=0.3, clips=20, steps=4, seeds=(0, 1), n_samples=3, sample_steps=2, batch_size=4)
    r = run_planted(tmp_path / "p", cfg, DEFECT_RULES + RULES, n_boot=50, log=lambda *_: None)
    ts = r["training_set"]
    assert ts["clips"] == 20 and ts["planted"] == 6 and ts["planted_fraction"] == pytest.approx(0.3)
    assert ts["flagged_by_rules"] == 6 and ts["recall"] == 1.0 and ts["false_flags"] == 0
    truth = json.loads((tmp_path / "p" / "data" / "all" / "planted.json").read_text())
    curated = {row["clip_id"] for row in LatentDataset(str(tmp_path / "p" / "data" / "curated"), ()).rows}
    assert len(truth["planted"]) == 6 and len(curated) == 14 and not curated & set(truth["planted"])
    assert r["arms"]["curated"]["windows"] == 14 and r["arms"]["all"]["windows"] == 20
    for arm in ("curated", "all"):
        ci = r["defect_rate"][arm]
        assert 0 <= ci["lo"] <= ci["mean"] <= ci["hi"] <= 1 and ci["samples"] == 6
        assert ci["wilson"]["lo"] <= ci["mean"] <= ci["wilson"]["hi"]
        assert [s["seed"] for s in r["arms"][arm]["seeds"]] == [0, 1]
    assert r["verdict"] in ("detected", "inconclusive", "reversed") and "all - curated" in r["difference"]
    assert set(r["verdicts"]) == {"bootstrap", "wilson"}
    assert r["verdict"] == "inconclusive" or set(r["verdicts"].values()) == {r["verdict"]}
    assert 0 < r["resolution"]["smallest_detectable_rate_rise"] <= 1
    assert "positive control: 6/20" in format_planted(r)
    assert len((tmp_path / "p" / "sample_scores.jsonl").read_text().splitlines()) == 2 * 2 * 3
