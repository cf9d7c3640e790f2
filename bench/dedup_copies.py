"""Copy detection on a generated set: shared and real videos, and copies of them as re-uploads carry them.

Run: python -m bench.dedup_copies [--videos ../shared/data/videos] [--real ../shared/data/real] [--work /tmp/copies] [--scan]
Builds the set of tests/_copies.py (EDIT_SOURCES and the real REAL_SOURCES, each with every copy in COPIES and
EDITS; compilations of 2 and 3 sources; the real excerpt bbb_excerpt_2s; NEGATIVES as they are), hashes every
analysis sample as the scan does, and matches video pairs side by side:

- before: today's matcher before region hashes -- whole-frame sample pHashes, time shift only;
- after: the default (region hashes: dup_kind edited; speed 0.8-1.25x).

Reports pair precision over every found pair ("shares footage" is true), recall over source-copy pairs, and recall
per edit kind. With --scan every file is scanned as the pipeline does and find_duplicates groups the clips (exact +
perceptual + segment [+ edited, with near misses verified on the keyframes by ORB + RANSAC]); a video pair counts
as found when two of their clips share a group.
Writes bench/results/dedup_copies.json and prints a table.
"""
import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "dedup_copies.json"
BEFORE = {"kinds": ("exact", "perceptual", "segment"), "segment_speed_range": (1.0, 1.0)}


def _samples(truth: dict, work: Path):
    from _copies import sample_hashes
    from curation.dedup.segments import samples_table

    v, t, h, r = [], [], [], []
    for name in truth:
        ts, hs, rs = sample_hashes(work / name)
        v += [name] * len(ts)
        t += ts
        h += hs
        r += rs
    return samples_table(v, t, h, r)


def _score(found: set, truth: dict) -> dict:
    from _copies import pair_scores, per_edit_recall, source_pairs

    s = pair_scores(found, truth)
    pairs = {p for ps in source_pairs(truth).values() for p in ps}
    return {"precision": round(s["precision"], 4), "source_copy_recall": round(len(found & pairs) / len(pairs), 4),
            "all_pairs_recall": round(s["recall"], 4), "found": s["found"], "false_pairs": s["false"],
            "per_edit": {k: f"{a}/{b}" for k, (a, b) in per_edit_recall(found, truth).items()}}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from _copies import COMPILATIONS, COPIES, EDIT_SOURCES, EDITS, NEGATIVES, build
    from curation.dedup import DedupParams
    from curation.dedup.segments import segment_matches

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default=str(REPO / ".." / "shared" / "data" / "videos"))
    ap.add_argument("--real", default=str(REPO / ".." / "shared" / "data" / "real"))
    ap.add_argument("--work", default="/tmp/vidcurate-copies")
    ap.add_argument("--scan", action="store_true", help="also scan every file and run find_duplicates on the clips")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    work = Path(args.work)
    t0 = time.perf_counter()
    truth = build(Path(args.videos), work, EDIT_SOURCES, COPIES + EDITS, COMPILATIONS, real=Path(args.real), negatives=NEGATIVES)
    samples = _samples(truth, work)
    report = {"files": len(truth), "samples": samples.num_rows, "prepare_s": round(time.perf_counter() - t0, 1)}
    for label, params in (("before", DedupParams(**BEFORE)), ("after", DedupParams())):
        t0 = time.perf_counter()
        m = segment_matches(samples, params)
        found = {frozenset((a, b)) for a, b in zip(m.column("video_a").to_pylist(), m.column("video_b").to_pylist())}
        report[f"samples_{label}"] = _score(found, truth) | {"wall_s": round(time.perf_counter() - t0, 2)}
    if args.scan:
        report.update(_scan_and_group(truth, work))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(_table(report))
    return 0


def _scan_and_group(truth: dict, work: Path) -> dict:
    from curation.dedup import DedupParams, find_duplicates
    from curation.scan import ScanParams, scan_video
    from schemas import TABLES, clips_schema, table_from_rows, videos_schema

    t0 = time.perf_counter()
    scans = {n: scan_video(str(work / n), n, ScanParams(), "bench") for n in truth}
    scan_s = time.perf_counter() - t0
    ok = {n: r for n, r in scans.items() if r.video is not None}
    clips = table_from_rows([c for r in ok.values() for c in r.clips], clips_schema, "clips")
    videos = table_from_rows([r.video for r in ok.values()], videos_schema, "videos")
    name_of = {r.video["video_id"]: n for n, r in ok.items()}
    samples = table_from_rows([s for r in ok.values() for s in r.samples], TABLES["samples"], "samples")  # the scan's own
    keyframes = table_from_rows([k for r in ok.values() for k in r.keyframes], TABLES["keyframes"], "keyframes")
    out = {"scan_s": round(scan_s, 1), "clips": clips.num_rows}
    for label, params in (("before", DedupParams(**BEFORE)), ("after", DedupParams(kinds=("exact", "perceptual", "segment", "edited")))):
        t0 = time.perf_counter()
        res = find_duplicates(clips, videos, params, samples=samples, keyframes=keyframes if label == "after" else None)
        wall = time.perf_counter() - t0
        groups: dict[str, set] = {}
        for v, g in zip(res.table.column("video_id").to_pylist(), res.table.column("dup_group_id").to_pylist()):
            if g is not None:
                groups.setdefault(g, set()).add(name_of[v])
        found = {frozenset((a, b)) for members in groups.values() for a in members for b in members if a < b}
        kinds = res.table.column("dup_kind").to_pylist()
        out[f"scan_{label}"] = _score(found, {n: truth[n] for n in ok}) | {
            "dropped": res.stats["dropped"], "find_duplicates_s": round(wall, 2),
            "dup_kinds": {k: kinds.count(k) for k in sorted(set(kinds) - {None})}}
    return out


def _table(report: dict) -> str:
    runs = [k for k in ("samples_before", "samples_after", "scan_before", "scan_after") if k in report]
    edits = sorted(report[runs[0]]["per_edit"])
    lines = [f"{'edit':>18} " + " ".join(f"{r:>15}" for r in runs)]
    for e in edits:
        lines.append(f"{e:>18} " + " ".join(f"{report[r]['per_edit'][e]:>15}" for r in runs))
    for key in ("source_copy_recall", "all_pairs_recall", "precision"):
        lines.append(f"{key:>18} " + " ".join(f"{report[r][key]:>15.3f}" for r in runs))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
