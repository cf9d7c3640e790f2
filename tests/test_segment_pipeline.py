"""Re-cut copies through `vidcurate run`: the scan's per-sample hashes, segment duplicates and their matched span.

A source (one 5.3 s shot of a shared video) and two copies cut from it: one starting 2.0 s in, one mirrored and
starting 1.0 s in. Their clips have other boundaries than the source's, so keyframe (perceptual) matching cannot
pair them; only the alignment of per-sample hashes (`samples` table -> dedup kind `segment`) can.
"""
import json

import pyarrow.parquet as pq
import pytest

from _copies import read_frames, write
from curation.dashboard import build_dashboard
from pipelines.config import load_config
from pipelines.run import run_pipeline
from schemas import read_table

SOURCE = "cockatoo.mp4"  # one handheld shot with strong camera motion: keyframes of differently cut clips differ
RECUT_S = 2.0  # the re-cut copy starts here in the source (s); a whole number of sample periods at 2 samples/s
MIRROR_S = 1.0  # the mirrored copy starts here (s)
KINDS_WITHOUT_SEGMENT = ["exact", "perceptual", "semantic"]


@pytest.fixture(scope="module")
def corpus(test_videos, tmp_path_factory):
    root = tmp_path_factory.mktemp("segment")
    frames, rate = read_frames(test_videos / SOURCE)
    inp = root / "in"
    inp.mkdir()
    write(inp / "source.mp4", frames, rate)
    copies = {"recut.mp4": frames[round(RECUT_S * rate):], "mirror.mp4": [f[:, ::-1] for f in frames[round(MIRROR_S * rate):]]}
    cfg = root / "cfg.yaml"
    cfg.write_text("output:\n  videos_per_part: 1\n")
    return root, inp, cfg, copies, rate, len(frames) / rate


def _run(inp, out, cfg, **overrides):
    return run_pipeline(str(inp), str(out), load_config(cfg, overrides or None), log=lambda *_: None)


def _oriented(row: dict, source_id: str) -> dict:
    """A dup_segments row seen from the source: (source span, copy span, t_copy - t_source, symmetry source -> copy)."""
    if row["video_a"] == source_id:
        return {"source": (row["a_start_s"], row["a_end_s"]), "copy": (row["b_start_s"], row["b_end_s"]),
                "offset": row["offset_s"], "symmetry": row["symmetry"]}
    return {"source": (row["b_start_s"], row["b_end_s"]), "copy": (row["a_start_s"], row["a_end_s"]),
            "offset": -row["offset_s"], "symmetry": row["symmetry"]}


@pytest.fixture(scope="module")
def incremental(corpus, ray_local):
    """Run on the source alone, then again with the copies added (only they are scanned)."""
    root, inp, cfg, copies, rate, _ = corpus
    out = root / "out"
    first = _run(inp, out, cfg)
    for name, frames in copies.items():
        write(inp / name, frames, rate)
    second = _run(inp, out, cfg)
    return out, first, second


def test_scan_writes_the_hash_of_every_analysis_sample(incremental):
    out, first, _ = incremental
    assert first.counts["scan"]["scanned"] == 1
    videos = read_table(str(out / "videos"), "videos").to_pylist()
    clips = read_table(str(out / "clips"), "clips")
    keyframes = read_table(str(out / "keyframes"), "keyframes").to_pylist()
    parts = list(out.glob("_work/scan-*/part-*/samples.parquet"))
    assert len(parts) == 3  # one part per video (videos_per_part 1), each with its samples
    samples = {}
    for p in parts:
        for r in pq.read_table(p).to_pylist():
            samples.setdefault(r["video_id"], {})[r["t"]] = r["phash"]
    for v in videos:  # ~2 samples per second over the whole file
        assert abs(len(samples[v["video_id"]]) - 2 * v["duration_s"]) <= 2
    # the keyframes are samples: their time and hash are in the samples table
    phash = dict(zip(clips.column("clip_id").to_pylist(), clips.column("phash").to_pylist()))
    order = {}
    for k in sorted(keyframes, key=lambda k: (k["clip_id"], k["position"])):
        i = order[k["clip_id"]] = order.get(k["clip_id"], -1) + 1
        assert samples[k["video_id"]][k["t"]] == phash[k["clip_id"]][i]


def _first_clips(clips: list[dict]) -> dict[str, dict]:
    """relpath -> the file's first clip: a copy's first clip starts where the copy was cut, inside a source shot."""
    return {c["uri"].rsplit("/", 1)[1]: c for c in clips if c["clip_index"] == 0}


def _best_segments(out, src: str) -> dict[str, dict]:
    """video_id of each copy -> its best matched segment with the source (most samples), seen from the source."""
    best = {}
    for r in read_table(str(out / "dup_segments"), "dup_segments").to_pylist():
        other = r["video_b"] if r["video_a"] == src else r["video_a"] if r["video_b"] == src else None
        if other and (other not in best or r["samples"] > best[other]["samples"]):
            best[other] = r
    return {v: _oriented(r, src) for v, r in best.items()}


def test_copies_are_segment_duplicates_with_their_matched_span(incremental, corpus):
    out, _, second = incremental
    *_, source_s = corpus
    assert second.counts["scan"]["scanned"] == 2 and second.counts["scan"]["already_done"] == 1  # resumed, samples reused
    videos = {v["relpath"]: v["video_id"] for v in read_table(str(out / "videos"), "videos").to_pylist()}
    clips = read_table(str(out / "clips"), "clips").to_pylist()
    first = _first_clips(clips)
    assert first["source.mp4"]["end_s"] > RECUT_S + 2  # the copies' cut points fall inside the source's first shot
    # the three first clips are one group; the copies' ones are dropped as segment duplicates (other boundaries:
    # their keyframes show other frames); clips that the cut left whole may pair as perceptual, as before
    assert len({first[n]["dup_group_id"] for n in first} - {None}) == 1
    for name in ("recut.mp4", "mirror.mp4"):
        c = first[name]
        assert "duplicate" in c["drop_reasons"] and (c["dup_kind"] == "segment" or c["clip_id"] == c["dup_of"]), c
    assert sum(first[n]["dup_kind"] == "segment" and first[n]["clip_id"] != first[n]["dup_of"] for n in first) == 2
    assert all("duplicate" in c["drop_reasons"] for c in clips if not c["uri"].endswith("source.mp4"))
    assert second.counts["dedup"]["pairs"]["segment"] >= 2

    segs = _best_segments(out, videos["source.mp4"])
    # the copy's second 0 is the source's RECUT_S (MIRROR_S): half a sample period of slack on each edge
    for name, start_s, symmetry in (("recut.mp4", RECUT_S, 0), ("mirror.mp4", MIRROR_S, 2)):  # 2 = mirrored (hashes.D4)
        m = segs[videos[name]]
        assert m["offset"] == pytest.approx(-start_s, abs=0.3), m
        assert m["source"][0] == pytest.approx(start_s, abs=0.6) and m["source"][1] == pytest.approx(source_s, abs=0.6), m
        assert m["copy"][0] == pytest.approx(0.0, abs=0.6) and m["copy"][1] == pytest.approx(source_s - start_s, abs=0.6), m
        assert m["symmetry"] == symmetry, m


def test_dashboard_shows_the_matched_span_in_both_videos(incremental):
    out, *_ = incremental
    record = max((json.loads(p.read_text()) for p in (out / "runs").glob("*.json")), key=lambda r: r["started_at"])
    assert "segment" in record["config"]["dedup"]["kinds"]
    _, html = build_dashboard(str(out))
    dup = html.read_text().split("<h2>Duplicate groups</h2>")[1].split("<h2>")[0]
    videos = {v["video_id"]: v for v in read_table(str(out / "videos"), "videos").to_pylist()}
    clips = {c["clip_id"]: c for c in read_table(str(out / "clips"), "clips").to_pylist()}
    members = [c for c in clips.values() if c["dup_kind"] == "segment" and c["clip_id"] != c["dup_of"]]
    assert len(members) >= 2 and dup.count("segment match (") == len(members)
    for m in members:  # next to the group's thumbnails: this file's span and the kept clip's file's span
        kept = clips[m["dup_of"]]
        seg = _best_segments(out, kept["video_id"])[m["video_id"]]
        here, there = videos[m["video_id"]], videos[kept["video_id"]]  # spans shown clamped to each file
        text = (f"matched span {max(0.0, seg['copy'][0]):.1f}–{min(seg['copy'][1], here['duration_s']):.1f} s of this file = "
                f"{max(0.0, seg['source'][0]):.1f}–{min(seg['source'][1], there['duration_s']):.1f} s of {there['relpath']}")
        assert text in dup, text
    assert "mirrored" in dup
    rows = [r for r in dup.split("<h3>")[1:] if "segment match (" in r]  # the groups with segment members
    assert rows and all(r.count('<img src="data:image/jpeg;base64,') >= 2 for r in rows)  # thumbnails next to the spans


def test_without_segment_matching_the_recut_clips_stay(incremental, corpus):
    """The same run folder with `segment` left out of dedup.kinds: no scan, and the re-cut first clips are kept."""
    out, *_ = incremental
    _, inp, cfg, *_ = corpus
    record = _run(inp, out, cfg, dedup={"kinds": KINDS_WITHOUT_SEGMENT})  # runs last: it rewrites the run's tables
    assert record.counts["scan"]["scanned"] == 0
    first = _first_clips(read_table(str(out / "clips"), "clips").to_pylist())
    assert all(c["dup_group_id"] is None for c in first.values()), first
    assert read_table(str(out / "dup_segments"), "dup_segments").num_rows == 0  # no stale matches left behind


def test_a_quarter_turn_is_named_from_the_member_side():
    """dup_segments says D4[symmetry] turns a's frames into b's; seen from a, b's frames turn back the other way."""
    from curation.dashboard.report import _seen_from
    from curation.hashes import D4_NAMES

    row = {"video_a": "x", "video_b": "y", "a_start_s": 1.0, "a_end_s": 5.0, "b_start_s": 0.0, "b_end_s": 4.0, "symmetry": 6}
    assert D4_NAMES[6] == "turned 90° clockwise"
    assert _seen_from(row, "y") == ((0.0, 4.0), (1.0, 5.0), 6)  # y is x turned clockwise
    assert _seen_from(row, "x") == ((1.0, 5.0), (0.0, 4.0), 5)  # x is y turned counter-clockwise
    assert _seen_from(dict(row, symmetry=2), "x")[2] == 2  # a mirror is its own inverse
