"""Copy detection on a generated set: the shared videos and re-published copies of them (tests/_copies.py).

Run: python -m bench.dedup_copies [--videos ../shared/data/videos] [--work /tmp/copies] [--scan]
Prints and writes bench/results/dedup_copies.json: precision and recall of video pairs found by segment
matching (temporal alignment of per-sample phashes), overall and per kind of copy, beside the baseline
that the keyframe-aligned, identity-only matching of earlier versions would give on the same samples
(no symmetry, no time shift). With --scan every file is scanned as the pipeline does and find_duplicates
(exact + perceptual + segment) groups clips; a video pair counts as found when two of their clips share a group.
"""
import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "dedup_copies.json"


def _samples(truth: dict, work: Path):
    from _copies import sample_hashes
    from curation.dedup.segments import samples_table

    v, t, h = [], [], []
    for name in truth:
        ts, hs = sample_hashes(work / name)
        v += [name] * len(ts)
        t += ts
        h += hs
    return samples_table(v, t, h)


def _per_kind(found: set, truth: dict) -> dict:
    from _copies import COPIES

    out = {}
    for how in COPIES:
        pairs = [frozenset((n, f"{src}.mp4")) for n, src in truth.items() if n.endswith(f"__{how}.mp4")]
        out[how] = f"{sum(p in found for p in pairs)}/{len(pairs)}"
    return out


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from _copies import SOURCES, build, pair_scores
    from curation.dedup import DedupParams
    from curation.dedup.segments import segment_matches

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default=str(REPO / ".." / "shared" / "data" / "videos"))
    ap.add_argument("--work", default="/tmp/vidcurate-copies")
    ap.add_argument("--scan", action="store_true", help="also scan every file and run find_duplicates on the clips")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    work = Path(args.work)
    t0 = time.perf_counter()
    truth = build(Path(args.videos), work)
    samples = _samples(truth, work)
    report = {"files": len(truth), "sources": list(SOURCES), "samples": samples.num_rows, "prepare_s": round(time.perf_counter() - t0, 1)}
    for label, params in (("segments_32bit_seeds", DedupParams()), ("segments_21bit_seeds", DedupParams(segment_seed_bits=21)),
                          ("segments_identity_only", DedupParams(phash_symmetric=False))):
        t0 = time.perf_counter()
        m = segment_matches(samples, params)
        found = {frozenset((a, b)) for a, b in zip(m.column("video_a").to_pylist(), m.column("video_b").to_pylist())}
        s = pair_scores(found, truth)
        report[label] = {k: s[k] for k in ("true_pairs", "found", "tp", "precision", "recall")}
        report[label].update(false_pairs=s["false"], per_copy_kind=_per_kind(found, truth), wall_s=round(time.perf_counter() - t0, 2))
    if args.scan:
        report["clips_find_duplicates"] = _scan_and_group(truth, work)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


def _scan_and_group(truth: dict, work: Path) -> dict:
    from _copies import pair_scores
    from curation.dedup import DedupParams, find_duplicates
    from curation.scan import ScanParams, scan_video
    from schemas import TABLES, clips_schema, table_from_rows, videos_schema

    scans = {n: scan_video(str(work / n), n, ScanParams(), "bench") for n in truth}
    ok = {n: r for n, r in scans.items() if r.video is not None}
    clips = table_from_rows([c for r in ok.values() for c in r.clips], clips_schema, "clips")
    videos = table_from_rows([r.video for r in ok.values()], videos_schema, "videos")
    name_of = {r.video["video_id"]: n for n, r in ok.items()}
    samples = table_from_rows([s for r in ok.values() for s in r.samples], TABLES["samples"], "samples")  # the scan's own
    out = {}
    for label, params in (("keyframes_identity_only", DedupParams(kinds=("exact", "perceptual"), phash_symmetric=False)),
                          ("keyframes_symmetric", DedupParams(kinds=("exact", "perceptual"))),
                          ("keyframes_symmetric_plus_segments", DedupParams(kinds=("exact", "perceptual", "segment")))):
        res = find_duplicates(clips, videos, params, samples=samples)
        groups: dict[str, set] = {}
        for v, g in zip(res.table.column("video_id").to_pylist(), res.table.column("dup_group_id").to_pylist()):
            if g is not None:
                groups.setdefault(g, set()).add(name_of[v])
        found = {frozenset((a, b)) for members in groups.values() for a in members for b in members if a < b}
        sc = pair_scores(found, {n: truth[n] for n in ok})
        out[label] = {k: sc[k] for k in ("true_pairs", "found", "tp", "precision", "recall")}
        out[label].update(false_pairs=sc["false"], per_copy_kind=_per_kind(found, truth), dropped=res.stats["dropped"])
    return out


if __name__ == "__main__":
    sys.exit(main())
