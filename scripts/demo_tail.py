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
    ("training", "checkpoints, metrics, sample grid, spectral plots"),
]:
    if (out / name).exists():
        print(f"  {out / name}: {what}")
print("=" * 72)
