"""Scan cost of sound: curation.scan.scan_video with audio off, audio without VAD, audio with VAD.

Run: python -m bench.audio_bench [--rounds 3]

Same files, same process, variants interleaved round by round (off, no-VAD,
full, off, ...) so load from other jobs hits them alike; median per variant.
CPU seconds (user + system of this process, decoder threads included) per
second of video, over the shared test videos that carry an audio track and
over all of them. The VAD model is loaded once before timing (once per
process in the pipeline too), and its load time is reported on its own.
Writes bench/results/audio.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "audio.json"
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def videos_dir() -> Path:
    return Path(os.environ.get("VIDCURATE_TEST_VIDEOS", REPO.parent / "shared" / "data" / "videos"))


def main(argv: list[str] | None = None) -> dict:
    from curation.audio import AudioParams
    from curation.audio_vad import vad_session
    from curation.scan import ScanParams, scan_video

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    t = time.process_time()
    vad_session()
    vad_load_cpu_s = time.process_time() - t
    variants = {
        "audio_off": ScanParams(audio=AudioParams(enabled=False)),
        "audio_no_vad": ScanParams(audio=AudioParams(vad=False)),
        "audio_full": ScanParams(),
    }
    files = sorted(p for p in videos_dir().iterdir() if p.suffix.lower() in VIDEO_EXTS)
    info = {}
    for p in files:  # warm-up scan: imports, page cache; also learns duration and audio presence
        r = scan_video(str(p), p.name, variants["audio_full"], "bench")
        if r.video is not None:
            info[p] = (r.video["duration_s"], bool(r.video.get("has_audio")))
    cpu: dict[str, dict[str, list[float]]] = {v: {"with_audio": [], "all": []} for v in variants}
    for _ in range(args.rounds):
        for name, params in variants.items():
            per = {"with_audio": 0.0, "all": 0.0}
            for p, (_, has_audio) in info.items():
                t = time.process_time()
                scan_video(str(p), p.name, params, "bench")
                dt = time.process_time() - t
                per["all"] += dt
                if has_audio:
                    per["with_audio"] += dt
            for k, v in per.items():
                cpu[name][k].append(v)
    meter = _meter_cost([p for p, (_, a) in info.items() if a], args.rounds)
    seconds = {"with_audio": sum(d for d, a in info.values() if a), "all": sum(d for d, _ in info.values())}
    rows = {}
    for name in variants:
        rows[name] = {k: statistics.median(cpu[name][k]) / seconds[k] for k in seconds}
    added = {k: {"audio_no_vad": rows["audio_no_vad"][k] - rows["audio_off"][k],
                 "audio_full": rows["audio_full"][k] - rows["audio_off"][k],
                 "ratio_full_vs_off": rows["audio_full"][k] / rows["audio_off"][k]} for k in seconds}
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
        "rounds": args.rounds,
        "files": {p.name: {"duration_s": d, "has_audio": a} for p, (d, a) in info.items()},
        "video_seconds": seconds,
        "cpu_s_per_video_s": rows,
        "added_cpu_s_per_video_s": added,
        "vad_model_load_cpu_s": vad_load_cpu_s,
        "audio_alone_cpu_s_per_audio_s": meter,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"{'variant':<14}{'CPU s/video s (files with audio)':>34}{'(all files)':>14}")
    for name, r in rows.items():
        print(f"{name:<14}{r['with_audio']:>34.4f}{r['all']:>14.4f}")
    print(f"added by audio (with VAD), files with audio: {added['with_audio']['audio_full']:.4f} CPU s per video s "
          f"(x{added['with_audio']['ratio_full_vs_off']:.3f})")
    print("audio alone, CPU s per audio s: " + ", ".join(f"{k} {v:.4f}" for k, v in meter.items()))
    return result


def _meter_cost(paths: list[Path], rounds: int) -> dict:
    """The audio part in isolation (less disturbed by load than the whole scan's difference):
    demux + decode the audio stream, then also the meter without VAD, then with VAD."""
    import av

    from curation.audio import AudioMeter, AudioParams

    def run(params: AudioParams | None) -> tuple[float, float]:
        cpu = audio_s = 0.0
        for p in paths:
            t = time.process_time()
            with av.open(str(p)) as c:
                meter = AudioMeter(params) if params else None
                for frame in c.decode(audio=0):
                    if meter:
                        meter.feed(frame)
                    audio_s += frame.samples / frame.sample_rate
                if meter:
                    meter.finish()
            cpu += time.process_time() - t
        return cpu, audio_s

    out = {}
    for name, params in (("decode_only", None), ("decode_meter_no_vad", AudioParams(vad=False)), ("decode_meter_vad", AudioParams())):
        runs = [run(params) for _ in range(rounds)]
        out[name] = statistics.median(c for c, _ in runs) / runs[0][1]
    return out


if __name__ == "__main__":
    main()
