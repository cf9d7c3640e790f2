"""Print what `make demo` produced and where to look."""
import json
import sys
from pathlib import Path

demo = Path(sys.argv[1])
out = demo / "out"
runs = sorted((out / "runs").glob("*.json"))
if not runs:
    sys.exit(f"no run record under {out}/runs: the run did not finish")
record = json.loads(runs[-1].read_text())
c = record["counts"]
print()
print("=" * 72)
print(f"demo run {record['run_id']} ({record['status']})")
print(f"  inputs:   {c['inputs']} files in {demo / 'input'} (ground truth: ground_truth.json)")
print(f"  videos:   {c['videos']}    clips: {c['clips']}    curated: {c['curated']}    error rows: {c['errors']}")
print(f"  dropped:  " + (", ".join(f"{k}={v}" for k, v in c.get("drop_reasons", {}).items()) or "none"))
for line in record.get("not_configured", []):
    print(f"  not configured: {line}")
for name, what in [
    ("dashboard.html", "report for a person (open in a browser)"),
    ("dashboard.duckdb", f'views: vidcurate query {out} "select * from funnel"'),
    ("curated", "the hand-off to training (Parquet)"),
    ("latents", "autoencoder latents of the curated clips"),
    ("training/ae/report.json", "autoencoder held-out report"),
    ("export/webdataset", "WebDataset shards: one mp4 of exactly the clip's frames (with its sound) + json (+ caption txt)"),
    ("export/csv/meta.csv", "Open-Sora-style CSV pointing at exported clip files"),
    ("evaluation.json", "curation precision/recall per defect against the demo's ground truth"),
    ("training/samples/sample_000.mp4", "a generated video clip decoded by the video autoencoder (CPU demo: not expected to look good)"),
    ("training/samples/contact_sheet.png", "every sample's frames, one row per sample"),
    ("training/samples/rapsd.png", "spatial spectra of data, noised data and samples"),
    ("training/samples/temporal_psd.png", "power spectrum along time: noise drowns fast change first"),
    ("training/dit_toy/dit_toy_samples.mp4", "the DiT on toy videos of moving shapes: training clips left, samples right"),
    ("training/dit_toy/dit_toy.json", "its samples' motion, shape-flicker, colour and count distances to held-out toy clips"),
    ("training/ablation/ablation.json", "curated vs random same-size vs all clips, 3 seeds, bootstrap CIs (+ ablation.png)"),
]:
    if (out / name).exists():
        print(f"  {out / name}: {what}")
report = out / "training/ae/report.json"
if report.exists():
    r = json.loads(report.read_text())
    print(f"  autoencoder, held-out: PSNR {r['psnr_db']['mean']:.2f} ± {r['psnr_db']['std']:.2f} dB, "
          f"SSIM {r['ssim']['mean']:.3f} (n={r['psnr_db']['n']} frames)")
    if "bicubic_psnr_db" in r:
        margin = r["psnr_db"]["mean"] - r["bicubic_psnr_db"]["mean"]
        print(f"    vs bicubic from the latent's size (no learning): {r['bicubic_psnr_db']['mean']:.2f} dB "
              f"-> {margin:+.2f} dB ({'beats' if margin > 0 else 'below'} interpolation)")
ablation = out / "training/ablation/ablation.json"
if ablation.exists():
    metrics = json.loads(ablation.read_text())["metrics"]
    print("  ablation, mean [95% CI] over 3 seeds (lower is better; a tiny CPU budget, so expect 'inconclusive'):")
    for name in ("frechet", "kid", "defect_rate_informative"):
        if name in metrics:
            m = metrics[name]
            arms = "  ".join(f"{a} {v['mean']:.3g} [{v['lo']:.3g}, {v['hi']:.3g}]" for a, v in m["arms"].items())
            d = m["differences"]["curated - random"]
            print(f"    {name:<24} {arms}   curated - random: {d['verdict']}")
print("=" * 72)
