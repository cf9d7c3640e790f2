"""`vidcurate export`: exact-frame clips with their audio, as WebDataset shards or an Open-Sora CSV.

The run folder is built without Ray: curation.scan.scan_video on small generated
videos (one with a stereo tone, one rotated, one with non-square pixels), its
rows written through schemas/ as `vidcurate run` writes them.
"""
import csv
import hashlib
import io
import json
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from _barred_video import write_barred
from _videogen import frames, write_video
from curation.export import DestinationError, ExportParams, export_run
from curation.export.clip_reader import ClipReader, FrameMismatch
from curation.export.report import read_report
from curation.export.destination import Destination
from curation.scan import ScanParams, scan_video
from schemas import curated_schema, table_from_rows, write_table, TABLES

REPO = Path(__file__).resolve().parents[1]
FAST = dict(preset="ultrafast", crf=23)
CAPTION = "a slow pan across a blurred colour texture"  # small, quick encodes: the tests check frames and bytes, not quality


def write_av(path: Path, seed: int, seconds: float = 2.0, fps: int = 25, rate: int = 44100, audio_s: float | None = None,
             width: int = 160, height: int = 90, sar: Fraction | None = None) -> Path:
    """A video with a stereo 440/660 Hz tone (`audio_s` seconds of it, default the picture's length)."""
    n = int(round(seconds * fps))
    audio_n = int(round((seconds if audio_s is None else audio_s) * rate))
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "threads": "1", "g": "12"}  # keyframes every 12 frames: seeks happen
        if sar is not None:
            vs.codec_context.sample_aspect_ratio = sar
        aus = out.add_stream("aac", rate=rate)
        aus.layout = "stereo"
        for img in frames(seed, width, height, n, n // 2):
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        t = np.arange(audio_n) / rate
        tone = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32) * 0.5
        for i in range(0, audio_n, 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, i:i + 1024]), format="fltp", layout="stereo")
            f.sample_rate, f.pts = rate, i
            for p in aus.encode(f):
                out.mux(p)
        for s in (vs, aus):
            for p in s.encode():
                out.mux(p)
    return path


def make_run(root: Path, videos: list[Path]) -> Path:
    """A run folder (videos, clips, curated) from scanning `videos`, every clip kept."""
    out = root / "out"
    rows = {"videos": [], "clips": []}
    for v in videos:
        r = scan_video(str(v), v.name, ScanParams(), run_id="test")
        assert r.video is not None, r.errors
        rows["videos"].append(r.video)
        rows["clips"] += r.clips
    for c in rows["clips"]:  # one captioned clip (the caption stage's column); the rest stay null
        if "caption" in curated_schema.names and c["uri"].endswith("tone.mp4") and c["clip_index"] == 0:
            c["caption"] = CAPTION
    for name in ("videos", "clips"):
        write_table(table_from_rows(rows[name], TABLES[name], name), name, str(out / name / "part-00000.parquet"))
    write_table(table_from_rows(rows["clips"], curated_schema, "curated"), "curated", str(out / "curated" / "part-00000.parquet"))
    return out


def _source_dir(tmp_path_factory, name: str) -> tuple[Path, Path]:
    """(a fresh folder, its src/ subfolder for the source videos)."""
    tmp = tmp_path_factory.mktemp(name)
    (tmp / "src").mkdir()
    return tmp, tmp / "src"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp, src = _source_dir(tmp_path_factory, "export")
    videos = [
        write_av(src / "tone.mp4", seed=1, seconds=3.0),  # a hard cut at 1.5 s: two clips
        write_video(src / "rotated.mp4", seed=2, seconds=1.6, rotation=90, cut=False),
        write_av(src / "short_audio.mp4", seed=3, seconds=2.0, audio_s=1.2, sar=Fraction(4, 3)),  # audio ends early
    ]
    return make_run(tmp, videos)


def _manifest(out: Path) -> dict[str, dict]:
    from schemas import read_table

    return {r["clip_id"]: r for r in read_table(str(out / "curated"), "curated").to_pylist()}


def _count_frames(data: bytes) -> tuple[int, tuple[int, int], float | None]:
    """(frames, (width, height), audio seconds or None) of an mp4 held in memory."""
    with av.open(io.BytesIO(data)) as c:
        vs = c.streams.video[0]
        assert vs.sample_aspect_ratio in (None, Fraction(1, 1))  # square pixels: the geometry is in the size
        n, size = 0, None
        for f in c.decode(vs):
            n, size = n + 1, (f.width, f.height)
    with av.open(io.BytesIO(data)) as c:
        if not c.streams.audio:
            return n, size, None
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
        return n, size, samples / c.streams.audio[0].rate


@pytest.fixture(scope="module")
def wds_export(run_dir, tmp_path_factory):
    dest = tmp_path_factory.mktemp("wds") / "shards"
    summary = export_run(str(run_dir), ExportParams(shard_size=1 << 20, **FAST), str(dest))
    return dest, summary


def test_webdataset_shards_read_back_with_exact_frames_and_audio(run_dir, wds_export):
    import webdataset as wds

    dest, summary = wds_export
    manifest = _manifest(run_dir)
    assert summary["counts"]["exported"] == len(manifest) >= 4 and summary["counts"]["errors"] == 0
    shards = sorted(str(p) for p in dest.glob("shard-*.tar"))
    assert shards
    seen = {}
    for sample in wds.WebDataset(shards, shardshuffle=False):
        meta = json.loads(sample["json"])
        row = manifest[sample["__key__"]]
        n, (w, h), audio_s = _count_frames(sample["mp4"])
        assert n == row["end_frame"] - row["start_frame"] == meta["export"]["num_frames"]
        assert (w, h) == (meta["export"]["width"], meta["export"]["height"])
        assert meta["uri"] == row["uri"] and meta["start_frame"] == row["start_frame"] and meta["clip_id"] == row["clip_id"]
        assert sample.get("txt") == (meta["caption"].encode() if meta.get("caption") else None)
        seen[sample["__key__"]] = (meta, audio_s, (w, h))
    assert set(seen) == set(manifest)
    if "caption" in curated_schema.names:
        assert sorted(m.get("caption") or "" for m, _, _ in seen.values())[-1] == CAPTION
    for meta, audio_s, (w, h) in seen.values():
        dur = meta["end_s"] - meta["start_s"]
        if "rotated" in meta["uri"]:
            assert audio_s is None and (w, h) == (90, 160)  # upright: stored 160x90 with a 90-degree display matrix
        elif "short_audio" in meta["uri"]:
            assert (w, h) == (214, 90)  # 160 px at 4:3 pixels -> 213.3, even
            if meta["start_s"] < 1.2:
                assert audio_s is not None and audio_s <= min(dur, 1.2 - meta["start_s"]) + 0.05
        else:  # the tone: audio trimmed to the clip's span (AAC ends on a 1024-sample frame)
            assert audio_s is not None and abs(audio_s - dur) < 1024 / 44100 + 0.01, (audio_s, dur)


def test_exported_frames_are_the_sequentially_decoded_frames(run_dir, wds_export):
    """Decoded pixels of an exported clip match the source's frames [start, end) decoded from the start."""
    import webdataset as wds

    dest, _ = wds_export
    sample = next(s for s in wds.WebDataset(sorted(str(p) for p in dest.glob("shard-*.tar")), shardshuffle=False)
                  if "tone" in json.loads(s["json"])["uri"] and json.loads(s["json"])["start_frame"] > 0)
    meta = json.loads(sample["json"])
    with av.open(meta["uri"]) as c:
        src = [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(c.streams.video[0])]
    src = src[meta["start_frame"]:meta["end_frame"]]
    with av.open(io.BytesIO(sample["mp4"])) as c:
        got = [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(c.streams.video[0])]
    assert len(got) == len(src)
    # lossy re-encode: each frame is closest to its own source frame, not to a neighbour
    for i, g in enumerate(got):
        errs = [np.abs(g - s).mean() for s in src]
        assert int(np.argmin(errs)) == i and errs[i] < 6


def test_same_input_gives_byte_identical_shards(run_dir, wds_export, tmp_path):
    dest, _ = wds_export
    again = tmp_path / "again"
    export_run(str(run_dir), ExportParams(shard_size=1 << 20, **FAST), str(again))
    a = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.glob("shard-*.tar")}
    b = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in again.glob("shard-*.tar")}
    assert a == b and a


def test_resume_after_a_kill_writes_the_same_shards(run_dir, tmp_path):
    params = ExportParams(shard_size=1, **FAST)  # one sample per shard: a kill can fall between shards
    ref = tmp_path / "ref"
    export_run(str(run_dir), params, str(ref))
    want = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in ref.glob("shard-*.tar")}
    assert len(want) == len(_manifest(run_dir))
    dest = tmp_path / "killed"
    export_run(str(run_dir), params, str(dest))
    # a kill: the last two shards never got their tar renamed into place, and a temporary is left behind
    for name in sorted(want)[-2:]:
        (dest / name).unlink()
    (dest / ".tmp-deadbeef-shard-000009.tar").write_bytes(b"partial")
    again = export_run(str(run_dir), params, str(dest))
    assert again["counts"]["exported_this_run"] == 2 and again["counts"]["already_exported"] == len(want) - 2
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.glob("shard-*.tar")} == want
    assert not list(dest.glob(".tmp-*"))
    done = export_run(str(run_dir), params, str(dest))
    assert done["counts"]["exported_this_run"] == 0 and done["counts"]["exported"] == len(want)
    with pytest.raises(Exception, match="other settings"):
        export_run(str(run_dir), ExportParams(shard_size=1, preset="ultrafast", crf=30), str(dest))


def test_csv_points_at_clip_files_with_opensora_columns(run_dir, tmp_path):
    dest = tmp_path / "csv"
    summary = export_run(str(run_dir), ExportParams(format="csv", **FAST), str(dest))
    manifest = _manifest(run_dir)
    rows = list(csv.DictReader(io.StringIO((dest / "meta.csv").read_text())))
    assert len(rows) == len(manifest) == summary["counts"]["exported"]
    assert list(rows[0])[:10] == ["path", "text", "num_frames", "height", "width", "aspect_ratio", "fps", "resolution",
                                  "aes", "motion"]
    for r in rows:
        data = Path(r["path"]).read_bytes()
        n, (w, h), _ = _count_frames(data)
        m = manifest[r["clip_id"]]
        assert int(r["num_frames"]) == n == m["end_frame"] - m["start_frame"]
        assert (int(r["width"]), int(r["height"])) == (w, h)
        assert float(r["aspect_ratio"]) == pytest.approx(h / w) and int(r["resolution"]) == h * w
        assert r["source_uri"] == m["uri"] and r["text"] == (m.get("caption") or "")  # null caption: empty, never made up
        assert float(r["motion"]) == pytest.approx(m["motion"], rel=1e-6)
    # rerun: every clip file is there, nothing is encoded again
    again = export_run(str(run_dir), ExportParams(format="csv", **FAST), str(dest))
    assert again["counts"]["exported_this_run"] == 0 and again["counts"]["already_exported"] == len(manifest)


def test_missing_source_is_an_error_row_and_the_export_goes_on(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    src = tmp_path / "src"
    src.mkdir()
    # point the run at copies of its sources, then delete one copy
    from schemas import read_table

    manifest = _manifest(run_dir)
    uris = sorted({m["uri"] for m in manifest.values()})
    moved = {u: str(src / Path(u).name) for u in uris}
    for u, v in moved.items():
        shutil.copy(u, v)
    for name in ("curated", "videos"):
        t = read_table(str(copy / name), name).to_pylist()
        for r in t:
            r["uri"] = moved[r["uri"]]
        schema = curated_schema if name == "curated" else TABLES[name]
        write_table(table_from_rows(t, schema, name), name, str(copy / name / "part-00000.parquet"))
    gone = moved[next(u for u in uris if "rotated" in u)]
    os.unlink(gone)
    dest = tmp_path / "dest"
    summary = export_run(str(copy), ExportParams(**FAST), str(dest))
    report = read_report(Destination(str(dest))).to_pylist()
    errors = [r for r in report if r["status"] == "error"]
    assert errors and {r["uri"] for r in errors} == {gone} and {r["error_type"] for r in errors} == {"SourceMissing"}
    assert summary["counts"]["exported"] == len(manifest) - len(errors) > 0
    assert json.loads((dest / "export_report.json").read_text())["errors_by_type"] == {"SourceMissing": len(errors)}


def _cli(capsys, *argv) -> tuple[int, str, str]:
    """`vidcurate ARGV` in this process (a child would spend its time importing the training verbs)."""
    from pipelines.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_unwritable_destination_fails_fast_with_one_line(run_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    dest = blocker / "export"  # a folder cannot be made under a file (permissions would not stop root)
    with pytest.raises(DestinationError, match="not writable"):
        export_run(str(run_dir), ExportParams(**FAST), str(dest))
    code, _, err = _cli(capsys, "export", str(run_dir), "--dest", str(dest), "--quiet")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "not writable" in lines[0], err
    assert not list(tmp_path.glob("**/shard-*"))


def test_reader_matches_sequential_decoding_on_shared_videos(test_videos):
    """Seeking reads give exactly the sequentially decoded frames (pixel hashes), spans in any order."""
    def digest(f):
        return hashlib.md5(f.to_ndarray().tobytes()).hexdigest()

    methods = {}
    for path in sorted(p for p in test_videos.iterdir() if p.suffix in (".mp4", ".avi")):
        with av.open(str(path)) as c:
            c.streams.video[0].thread_type = "AUTO"
            seq = [digest(f) for f in c.decode(c.streams.video[0])]
        n = len(seq)
        spans = [(n // 2, min(n, n // 2 + 5)), (max(0, n - 3), n), (1, min(n, 4))]
        with ClipReader(str(path), n) as r:
            for a, b in spans:
                try:
                    got = [digest(f) for f in r.frames(a, b)]
                except FrameMismatch as e:
                    r.fall_back_to_sequential(str(e))
                    got = [digest(f) for f in r.frames(a, b)]
                assert got == seq[a:b], (path.name, a, b, r.method)
            methods[path.name] = r.method
    assert methods["bikes.mp4"] == "seek" and methods["testvideo.mp4"] == "seek"
    assert methods["pedestrians.avi"] == "sequential"  # its decoded pts disagree with its packets'


def test_cli_export_webdataset(run_dir, tmp_path, capsys):
    dest = tmp_path / "cli"
    code, out, err = _cli(capsys, "export", str(run_dir), "--format", "webdataset", "--dest", str(dest),
                          "--preset", "ultrafast", "--quiet")
    assert code == 0, err
    assert "exported" in out and list(dest.glob("shard-*.tar"))
    code, _, err = _cli(capsys, "export", str(run_dir), "--crf", "99")
    assert code == 2 and "crf" in err and len(err.strip().splitlines()) == 1
    code, _, err = _cli(capsys, "export", str(tmp_path / "no_run"), "--dest", str(tmp_path / "d"))
    assert code == 2 and "not a run folder" in err


@pytest.fixture(scope="module")
def moto_s3():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"key": "AKIAEXPORTTESTKEY000", "secret": "export-test-secret",
               "client_kwargs": {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"}}
    import boto3

    boto3.client("s3", endpoint_url=f"http://{host}:{port}", aws_access_key_id=options["key"],
                 aws_secret_access_key=options["secret"], region_name="us-east-1").create_bucket(Bucket="exports")
    yield options
    server.stop()


def test_s3_destination_writes_readable_shards_and_resumes(run_dir, moto_s3, tmp_path):
    import s3fs
    import webdataset as wds

    params = ExportParams(shard_size=150_000, **FAST)  # a few samples per shard
    summary = export_run(str(run_dir), params, "s3://exports/run1", dest_options=moto_s3)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **moto_s3)
    tars = sorted(p for p in fs.ls("exports/run1") if p.endswith(".tar"))
    manifest = _manifest(run_dir)
    assert 1 < len(tars) < len(manifest) == summary["counts"]["exported"]
    assert not [p for p in fs.find("exports/run1") if "/.tmp-" in p]
    local = []
    for t in tars:
        local.append(str(tmp_path / t.split("/")[-1]))
        fs.get_file(t, local[-1])
    keys = []
    for sample in wds.WebDataset(local, shardshuffle=False):
        assert _count_frames(sample["mp4"])[0] == manifest[sample["__key__"]]["num_frames"]
        keys.append(sample["__key__"])
    assert sorted(keys) == sorted(manifest)
    again = export_run(str(run_dir), params, "s3://exports/run1", dest_options=moto_s3)
    assert again["counts"]["exported_this_run"] == 0 and again["counts"]["already_exported"] == len(manifest)
    for blob in (fs.cat_file(p) for p in fs.find("exports/run1")):
        assert moto_s3["secret"].encode() not in blob
    with pytest.raises(DestinationError, match="not writable"):
        export_run(str(run_dir), params, "s3://no-such-bucket/x", dest_options=moto_s3)


def test_caption_goes_to_json_txt_and_csv_text():
    """A manifest with a caption column (the caption stage's) carries it; a null caption writes no text."""
    from curation.export.clip_writer import EncodedClip
    from curation.export.exporter import sample_members
    from curation.export.opensora_csv import csv_row

    enc = EncodedClip(num_frames=10, width=64, height=48, fps=25.0, audio=True, audio_error=None,
                      read_method="seek", encode_s=0.1)
    clip = {"clip_id": "abc", "uri": "/v.mp4", "caption": "a red kite over a beach", "aesthetic": 5.5, "motion": 0.01,
            "text_area_frac": 0.02, "embedding": [0.1, 0.2]}
    meta, members = sample_members(clip, enc, ExportParams(), "/tmp/x.mp4")
    assert dict(members)["txt"] == b"a red kite over a beach" and json.loads(dict(members)["json"])["caption"] == clip["caption"]
    row = csv_row("s3://b/abc.mp4", meta)
    assert row["text"] == clip["caption"] and row["aes"] == 5.5 and row["text_area_frac"] == 0.02 and "embedding" not in row
    meta, members = sample_members(dict(clip, caption=None), enc, ExportParams(), "/tmp/x.mp4")
    assert "txt" not in dict(members) and json.loads(dict(members)["json"])["caption"] is None
    assert csv_row("p", meta)["text"] is None and "embedding" not in csv_row("p", dict(meta, embedding=None))
    meta, members = sample_members({k: v for k, v in clip.items() if k != "caption"}, enc, ExportParams(), "/tmp/x.mp4")
    assert "txt" not in dict(members) and csv_row("p", meta)["text"] is None


# ------------------------------------------------------------------ content box: export crops the bars off


@pytest.fixture(scope="module")
def bars_run(tmp_path_factory) -> Path:
    tmp, src = _source_dir(tmp_path_factory, "bars")
    videos = [
        write_barred(src / "letterbox.mp4", seed=4, top=12, left=0),  # 160x114, picture 160x90 at y=12
        write_barred(src / "windowbox_rotated.mp4", seed=8, top=10, left=14, rgb=(40, 70, 160), rotation=90),
    ]  # stored 188x110 with a blue border, shown upright as 110x188: picture 90x160 at (10, 14)
    # (seed 8: the scan reads this box a pixel tall, 13..174, which the export must round inwards)
    return make_run(tmp, videos)


def _display_frames(uri: str) -> list[np.ndarray]:
    """Source frames decoded from the start, turned upright (curation.decode's quarter turns)."""
    with av.open(uri) as c:
        out = []
        for f in c.decode(c.streams.video[0]):
            k = int(round(float(f.rotation or 0) / 90.0)) % 4
            out.append(np.rot90(f.to_ndarray(format="rgb24"), k=k).astype(np.int16))
    return out


def _decoded(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as c:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(c.streams.video[0])]


def _samples(dest: Path) -> list[tuple[dict, bytes]]:
    import webdataset as wds

    return [(json.loads(s["json"]), s["mp4"])
            for s in wds.WebDataset(sorted(str(p) for p in dest.glob("shard-*.tar")), shardshuffle=False)]


def test_letterboxed_clip_exports_the_content_box_with_the_cropped_source_frames(bars_run, tmp_path):
    from curation.export.crop import content_box, even_box

    manifest = _manifest(bars_run)
    truth = {"letterbox.mp4": (0, 12, 160, 90), "windowbox_rotated.mp4": (10, 14, 90, 160)}
    for m in manifest.values():  # the scan's boxes (curation/content_box.py), within 2 px of the truth
        got = (m["content_x"], m["content_y"], m["content_w"], m["content_h"])
        assert max(abs(a - b) for a, b in zip(got, truth[Path(m["uri"]).name])) <= 2, (m["uri"], got)
    dest = tmp_path / "wds"
    summary = export_run(str(bars_run), ExportParams(**FAST), str(dest))
    assert summary["counts"]["exported"] == len(manifest) and summary["settings"]["crop_to_content"] is True
    samples = _samples(dest)
    assert len(samples) == len(manifest)
    for meta, mp4 in samples:
        e = meta["export"]
        box = even_box(content_box(meta), meta["width"], meta["height"])
        x, y, w, h = box.x, box.y, box.w, box.h
        assert e["crop"] == box.as_dict() and x % 2 == y % 2 == w % 2 == h % 2 == 0
        assert meta["content_x"] <= x and x + w <= meta["content_x"] + meta["content_w"]  # inside the measured box
        assert meta["content_y"] <= y and y + h <= meta["content_y"] + meta["content_h"]
        assert w >= meta["content_w"] - 2 and h >= meta["content_h"] - 2
        assert (e["width"], e["height"]) == (w, h) and (e["frame_width"], e["frame_height"]) == (meta["width"], meta["height"])
        got = _decoded(mp4)
        assert (got[0].shape[1], got[0].shape[0]) == (w, h)
        src = [f[y:y + h, x:x + w] for f in _display_frames(meta["uri"])[meta["start_frame"]:meta["end_frame"]]]
        assert len(got) == len(src) == meta["end_frame"] - meta["start_frame"]
        for i, g in enumerate(got):  # lossy re-encode: each frame is closest to its own cropped source frame
            errs = [np.abs(g - s).mean() for s in src]
            assert int(np.argmin(errs)) == i and errs[i] < 6, (meta["uri"], i, errs[i])
        # no bar is left: the picture's edge rows and columns are not the bar colour
        bar = np.array([0, 0, 0] if "letterbox" in meta["uri"] else [40, 70, 160])
        for edge in (got[0][0], got[0][-1], got[0][:, 0], got[0][:, -1]):
            assert np.abs(edge - bar).mean() > 20


def test_full_frame_keeps_the_bars_and_a_crop_is_another_export(bars_run, tmp_path, capsys):
    dest = tmp_path / "full"
    code, _, err = _cli(capsys, "export", str(bars_run), "--dest", str(dest), "--full-frame", "--preset", "ultrafast",
                        "--quiet")
    assert code == 0, err
    for meta, mp4 in _samples(dest):
        got = _decoded(mp4)
        assert meta["export"]["crop"] is None
        assert (got[0].shape[1], got[0].shape[0]) == (meta["width"], meta["height"]) == (meta["export"]["width"],
                                                                                          meta["export"]["height"])
        src = _display_frames(meta["uri"])[meta["start_frame"]]
        assert np.abs(got[0] - src).mean() < 6  # the whole frame, bars included
    # the destination holds a full-frame export: a cropped export into it is refused, not mixed in
    with pytest.raises(Exception, match="crop_to_content"):
        export_run(str(bars_run), ExportParams(preset="ultrafast"), str(dest))


def test_csv_width_and_height_are_the_cropped_picture(bars_run, tmp_path):
    dest = tmp_path / "csv"
    export_run(str(bars_run), ExportParams(format="csv", **FAST), str(dest))
    rows = list(csv.DictReader(io.StringIO((dest / "meta.csv").read_text())))
    assert rows
    for r in rows:
        n, (w, h), _ = _count_frames(Path(r["path"]).read_bytes())
        assert (int(r["width"]), int(r["height"])) == (w, h) == (int(r["crop_w"]), int(r["crop_h"]))
        assert 0 <= int(r["content_w"]) - w <= 2 and 0 <= int(r["content_h"]) - h <= 2  # the box, rounded inwards
        assert float(r["aspect_ratio"]) == pytest.approx(h / w)
        assert (int(r["frame_width"]), int(r["frame_height"])) in ((160, 114), (110, 188))


def test_rows_without_a_box_export_the_full_frame(bars_run, tmp_path):
    """Older runs (null box columns) export the whole frame and say so."""
    copy = tmp_path / "run"
    shutil.copytree(bars_run, copy)
    from schemas import read_table

    rows = read_table(str(copy / "curated"), "curated").to_pylist()
    for r in rows:
        r.update(content_x=None, content_y=None, content_w=None, content_h=None, content_aspect=None, content_frac=None)
    write_table(table_from_rows(rows, curated_schema, "curated"), "curated", str(copy / "curated" / "part-00000.parquet"))
    dest = tmp_path / "wds"
    assert export_run(str(copy), ExportParams(**FAST), str(dest))["counts"]["errors"] == 0
    for meta, mp4 in _samples(dest):
        got = _decoded(mp4)
        assert meta["export"]["crop"] is None and (got[0].shape[1], got[0].shape[0]) == (meta["width"], meta["height"])


def test_box_is_rounded_inwards_to_even_pixels():
    from curation.export.crop import Box, content_box, even_box

    cb = content_box({"content_x": 3, "content_y": 11, "content_w": 151, "content_h": 69, "width": 160, "height": 90})
    b = even_box(cb, 160, 90)
    assert b == Box(4, 12, 150, 68)  # edges 3..154 and 11..80 -> 4..154 and 12..80
    assert b.x % 2 == b.y % 2 == b.w % 2 == b.h % 2 == 0
    assert b.x >= 3 and b.y >= 11 and b.x + b.w <= 154 and b.y + b.h <= 80  # never wider than the content
    # the writer's frame is even (213 px at 4:3 pixels -> 214): the box is scaled to it first
    wide = content_box({"content_x": 0, "content_y": 10, "content_w": 213, "content_h": 70, "width": 213, "height": 90})
    assert even_box(wide, 214, 90) == Box(0, 10, 214, 70)
    assert content_box({"content_x": None, "content_y": 0, "content_w": 10, "content_h": 10, "width": 10, "height": 10}) is None
    assert content_box({"width": 10, "height": 10}) is None  # an older manifest without the columns
    assert even_box(content_box({"content_x": 5, "content_y": 5, "content_w": 2, "content_h": 2, "width": 10,
                                 "height": 10}), 10, 10) is None  # less than 2x2 px left after rounding
