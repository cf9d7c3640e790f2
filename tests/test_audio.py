"""Sound in the scan: probe, per-clip loudness/silence/clipping/speech from the one decode, filters."""
import importlib.util
import os
from fractions import Fraction

import av
import numpy as np
import pyloudnorm
import pytest

from curation.audio import AudioMeter, AudioParams, gated_loudness
from curation.audio_vad import MODEL_FILE, VAD_RATE, SpeechProbs
from curation.filters import Rule, apply_filters
from curation.scan import ScanParams, scan_video
from schemas import table_from_rows
from schemas.tables import clips_schema
from tests._audiogen import clipped_square, formant_speech, silence, tone, write_av

RATE = 48000


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """One scan per generated file (each 2-3 s, 96x64 px)."""
    d = tmp_path_factory.mktemp("audio")
    files = {
        "tone": write_av(d / "tone.mp4", tone(2, RATE), seed=1),
        "silence": write_av(d / "silence.mp4", silence(2, RATE), seed=2),
        "clipped": write_av(d / "clipped.mp4", clipped_square(2, RATE), seed=3),
        "short": write_av(d / "short.mp4", tone(1, RATE), video_s=3, seed=4),
        "speech": write_av(d / "speech.mp4", formant_speech(3, RATE), video_s=3, seed=5),
        "audio_only": write_av(d / "audio_only.mp4", tone(1, RATE), video_s=None),
        "no_audio": write_av(d / "no_audio.mp4", None, seed=6),
    }
    return {k: (p, scan_video(str(p), p.name, ScanParams(), "t")) for k, p in files.items()}


def _decoded(path, start_s: float, end_s: float) -> np.ndarray:
    """The file's audio decoded independently, as float (n, C), cut to [start_s, end_s)."""
    with av.open(str(path)) as c:
        x = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1).T.astype(np.float64)
        rate = c.streams.audio[0].codec_context.sample_rate
    return x[int(round(start_s * rate)):int(round(end_s * rate))], rate


def test_probe_columns_and_decode_once(scans):
    v = scans["tone"][1].video
    assert v["has_audio"] is True and v["audio_codec"] == "aac"
    assert v["audio_sample_rate"] == RATE and v["audio_channels"] == 1
    assert abs(v["audio_start_s"]) < 0.05
    assert abs(v["av_duration_gap_s"]) < 0.05  # same length as the picture
    assert v["decoder_opens"] == 1  # the audio came from the same open as the picture


def test_tone_loudness_matches_pyloudnorm(scans):
    path, r = scans["tone"]
    (clip,) = r.clips
    x, rate = _decoded(path, clip["start_s"], clip["end_s"])
    reference = pyloudnorm.Meter(rate).integrated_loudness(x)
    assert abs(clip["loudness_lufs"] - reference) < 0.1
    # a 0.3-amplitude 440 Hz sine: -10.5 dBFS RMS, +~0.1 dB of K-weighting, -0.691
    assert -15.5 < clip["loudness_lufs"] < -13.5
    assert clip["silence_frac"] == 0.0 and clip["audio_clipping_frac"] == 0.0
    assert clip["audio_coverage"] > 0.95


def test_speech_loudness_matches_pyloudnorm(scans):
    """A signal whose level varies (syllables and pauses) exercises both gates."""
    path, r = scans["speech"]
    (clip,) = r.clips
    x, rate = _decoded(path, clip["start_s"], clip["end_s"])
    assert abs(clip["loudness_lufs"] - pyloudnorm.Meter(rate).integrated_loudness(x)) < 0.1


def test_silence_and_clipping(scans):
    (sil,) = scans["silence"][1].clips
    assert sil["silence_frac"] == 1.0
    assert sil["loudness_lufs"] == -70.0  # every block below BS.1770's absolute gate
    assert sil["speech_frac"] == 0.0
    (clipped,) = scans["clipped"][1].clips
    (tone_clip,) = scans["tone"][1].clips
    assert clipped["audio_clipping_frac"] > 0.1  # AAC rings around the square's edges; the flats stay at full scale
    assert tone_clip["audio_clipping_frac"] == 0.0
    assert clipped["loudness_lufs"] > tone_clip["loudness_lufs"] + 8


def test_track_shorter_than_picture(scans):
    r = scans["short"][1]
    assert r.video["av_duration_gap_s"] == pytest.approx(2.0, abs=0.05)
    (clip,) = r.clips
    assert clip["audio_coverage"] == pytest.approx(1 / 3, abs=0.03)
    assert clip["loudness_lufs"] is not None  # scored on the part that has sound


def test_audio_only_and_no_audio(scans):
    r = scans["audio_only"][1]
    assert r.video is None and [e["stage"] for e in r.errors] == ["decode"]
    assert "audio-only" in r.errors[0]["message"]
    r = scans["no_audio"][1]
    assert r.video["has_audio"] is False and r.video["audio_codec"] is None
    assert r.errors == []
    for c in r.clips:
        assert c["audio_channels"] == 0
        assert all(c[k] is None for k in ("audio_coverage", "loudness_lufs", "silence_frac", "audio_clipping_frac", "speech_frac"))


def test_speech_frac_speech_like_vs_tone(scans):
    (speech,) = scans["speech"][1].clips
    (tone_clip,) = scans["tone"][1].clips
    assert speech["speech_frac"] > 0.8
    assert tone_clip["speech_frac"] < 0.05


def test_vad_stream_equals_silero_sequence():
    """Fed in odd-sized chunks across ONNX blocks, the probabilities equal the package's own batched run."""
    import torch

    threads = torch.get_num_threads()
    from silero_vad.sequence_vad import SileroVADSequence  # the package's import pins torch to one thread

    torch.set_num_threads(threads)
    x = np.concatenate([formant_speech(6, VAD_RATE, seed=7), tone(4, VAD_RATE)])
    s = SpeechProbs()
    for i in range(0, len(x), 3001):
        s.feed(x[i:i + 3001])
    ours = s.finish()
    path = os.path.join(importlib.util.find_spec("silero_vad").submodule_search_locations[0], "data", MODEL_FILE)
    ref = SileroVADSequence(path).audio_forward(x)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_audio_that_does_not_decode_gives_its_own_error_row(scans, tmp_path):
    src = scans["tone"][0]
    bad = tmp_path / "bad_audio.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(src)) as inp, av.open(str(bad), "w") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vo, ao = out.add_stream_from_template(vin), out.add_stream_from_template(ain)
        for p in inp.demux(vin, ain):
            if p.dts is None:
                continue
            if p.stream.type == "audio":  # same timing, random payload
                q = av.Packet(rng.integers(0, 256, p.size, dtype=np.uint8).tobytes())
                q.pts, q.dts, q.time_base = p.pts, p.dts, p.time_base
                q.stream = ao
                out.mux(q)
            else:
                p.stream = vo
                out.mux(p)
    r = scan_video(str(bad), bad.name, ScanParams(), "t")
    assert [e["stage"] for e in r.errors] == ["audio"]
    assert r.video["num_frames"] == 20 and len(r.clips) == 1  # the picture was processed
    assert r.video["has_audio"] is False and r.video["audio_codec"] == "aac"
    assert r.clips[0]["loudness_lufs"] is None


def test_audio_off_reads_no_audio(scans):
    path, _ = scans["tone"]
    r = scan_video(str(path), path.name, ScanParams(audio=AudioParams(enabled=False)), "t")
    assert r.video.get("has_audio") is None and r.video["audio_codec"] == "aac"  # probed, not measured
    assert r.clips[0].get("loudness_lufs") is None and r.clips[0].get("audio_channels") is None


def test_filters_give_audio_reasons(scans):
    rows = [dict(c, clip_id=f"{k}{i}") for k in ("tone", "silence", "clipped", "short", "no_audio", "speech")
            for i, c in enumerate(scans[k][1].clips)]
    table = table_from_rows(rows, clips_schema, "clips")
    rules = [Rule("audio_channels", 1, None, "no_audio"), Rule("silence_frac", None, 0.9, "silent"),
             Rule("audio_clipping_frac", None, 0.01, "audio_clipped"), Rule("audio_coverage", 0.9, None, "av_gap"),
             Rule("speech_frac", None, 0.5, "speech")]
    out = apply_filters(table, rules)
    reasons = {cid[:-1]: r for cid, r in zip(out.column("clip_id").to_pylist(), out.column("drop_reasons").to_pylist())}
    assert reasons["tone"] == []
    assert reasons["silence"] == ["silent"]
    assert reasons["clipped"] == ["audio_clipped"]
    assert reasons["short"] == ["av_gap"]
    assert set(reasons["no_audio"]) == {"no_audio"}  # null scores never fail the other rules
    assert reasons["speech"] == ["speech"]


def test_meter_memory_is_per_window():
    """A minute of 48 kHz stereo keeps ~600 windows of statistics, not 2.9 M samples."""
    m = AudioMeter(AudioParams(vad=False))
    rs = None
    for i in range(60 * RATE // 1024):
        f = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32) + 0.1, format="flt", layout="stereo")
        f.sample_rate, f.pts, f.time_base = RATE, i * 1024, Fraction(1, RATE)
        m.feed(f)
    m.finish()
    kept = sum(a.size for lst in (m._kweighted_ss, m._raw_ss, m._clipped, m._counts) for a in lst)
    assert kept < 5000
    assert len(m._raw_ss) <= 61  # measured in 1 s batches: a handful of arrays per minute
    scores = m.clip_scores(10.0, 20.0)
    assert scores["audio_coverage"] == pytest.approx(1.0)
    # a constant 0.1 on both channels: K-weighting removes DC, so the level falls under the gate
    assert scores["loudness_lufs"] == -70.0 and scores["silence_frac"] == 0.0


def test_gating_follows_bs1770():
    """Eqs. 5-7: a quiet block 20 LU below the rest is removed by the relative gate."""
    gains = np.array([1.0])
    loud, quiet = 10 ** ((-20 + 0.691) / 10), 10 ** ((-40 + 0.691) / 10)
    assert gated_loudness(np.array([[loud]] * 3 + [[quiet]]), gains) == pytest.approx(-20.0, abs=1e-9)
    assert gated_loudness(np.array([[1e-12]]), gains) == -70.0


def test_shared_videos_with_and_without_audio(test_videos):
    """realshort and bigbuckbunny (5.1) carry sound; counter has no audio stream."""
    for name, channels in (("realshort.mp4", 1), ("bigbuckbunny.mp4", 6)):
        r = scan_video(str(test_videos / name), name, ScanParams(), "t")
        assert r.video["has_audio"] is True and r.video["audio_channels"] == channels
        assert all(c["loudness_lufs"] is not None and c["loudness_lufs"] > -60 for c in r.clips)
        if name == "realshort.mp4":  # mono: pyloudnorm takes it as is
            (clip,) = r.clips
            x, rate = _decoded(test_videos / name, clip["start_s"], clip["end_s"])
            assert abs(clip["loudness_lufs"] - pyloudnorm.Meter(rate).integrated_loudness(x)) < 0.1
        else:  # 5.1: pyloudnorm takes L R C Ls Rs, without the LFE (BS.1770 excludes it)
            (clip,) = r.clips
            x, rate = _decoded(test_videos / name, clip["start_s"], clip["end_s"])
            assert abs(clip["loudness_lufs"] - pyloudnorm.Meter(rate).integrated_loudness(x[:, [0, 1, 2, 4, 5]])) < 0.1
    r = scan_video(str(test_videos / "counter.mp4"), "counter.mp4", ScanParams(), "t")
    assert r.video["has_audio"] is False
    assert all(c["loudness_lufs"] is None for c in r.clips)


def test_config_audio_section_and_rules():
    from pipelines.config import ConfigError, load_config
    from pipelines.params import filter_rules, scan_params

    cfg = load_config(overrides={"audio": {"silence_dbfs": -50.0, "vad": False}})
    assert scan_params(cfg).audio == AudioParams(silence_dbfs=-50.0, vad=False)
    reasons = {r.reason: r for r in filter_rules(cfg)}
    assert reasons["av_gap"].column == "audio_coverage" and reasons["audio_clipped"].column == "audio_clipping_frac"
    assert "no_audio" not in reasons and "silent" not in reasons  # off by default
    cfg = load_config(overrides={"filters": [{"column": "audio_channels", "min": 1, "reason": "no_audio"}]})
    reasons = [r.reason for r in filter_rules(cfg)]  # a user rule for a new reason is added to the defaults
    assert reasons[-1] == "no_audio" and "av_gap" in reasons and reasons.count("no_audio") == 1
    with pytest.raises(ConfigError, match="audio.full_scale"):
        load_config(overrides={"audio": {"full_scale": 1.5}})


def test_dashboard_shows_audio(tmp_path, test_videos):
    """Audio presence per input, with_audio in the funnel, audio columns in by_source, an Audio section."""
    import duckdb

    from curation.dashboard import build_dashboard
    from schemas import read_table, write_table
    from schemas.tables import videos_schema
    from _dashboard_run import make_run

    out = make_run(tmp_path / "OUT", tmp_path / "inputs", test_videos, "a")
    videos = read_table(str(out / "videos" / "part-0.parquet"), "videos").to_pylist()
    clips = read_table(str(out / "clips" / "part-0.parquet"), "clips").to_pylist()
    sound = {"nature/cockatoo.mp4": (1, -30.0, 0.1, 0.0), "city/pedestrians.avi": (2, -20.0, 0.6, 0.8)}
    uris = {v["uri"]: v["relpath"] for v in videos}
    for v in videos:
        s = sound.get(v["relpath"])
        v.update(has_audio=s is not None, audio_codec="aac" if s else None, audio_channels=s[0] if s else None)
    for c in clips:
        s = sound.get(uris[c["uri"]])
        c["audio_channels"] = s[0] if s else 0
        if s:
            c.update(audio_coverage=1.0, loudness_lufs=s[1], silence_frac=s[2], speech_frac=s[3], audio_clipping_frac=0.0)
    write_table(table_from_rows(videos, videos_schema, "videos"), "videos", str(out / "videos" / "part-0.parquet"))
    write_table(table_from_rows(clips, clips_schema, "clips"), "clips", str(out / "clips" / "part-0.parquet"))
    db, html = build_dashboard(str(out))
    con = duckdb.connect(str(db), read_only=True)
    presence = {r[0]: r[1:3] for r in con.execute("SELECT audio, inputs, clips FROM audio_presence").fetchall()}
    assert presence == {"audio": (2, 12), "no audio stream": (2, 12)}
    (total,) = con.execute("SELECT with_audio FROM funnel WHERE level = 'clips' AND kind = 'total'").fetchone()
    assert total == 12
    (inputs_with_audio,) = con.execute("SELECT with_audio FROM funnel WHERE level = 'inputs' AND kind = 'total'").fetchone()
    assert inputs_with_audio == 2
    by = {r[0]: r[1:] for r in con.execute(
        "SELECT source, inputs_with_audio, clips_with_audio, median_loudness_lufs, mean_speech_frac FROM by_source").fetchall()}
    assert by["city"] == (1, 6, -20.0, pytest.approx(0.8))
    assert by["nature"][:3] == (1, 6, -30.0)
    con.close()
    page = html.read_text()
    assert "<h2>Audio</h2>" in page and 'href="#score-loudness_lufs"' in page and 'id="score-speech_frac"' in page
