"""The duplicate groups of the report outline the matched region of an edited copy (a centred crop)."""
from curation.dashboard.report import _matched_region, _outlined, _segment_match


def _member(kind="edited"):
    return {"video_id": "vb", "kept_video_id": "va", "kept_relpath": "src.mp4", "clip_id": "c2", "dup_of": "c1",
            "dup_kind": kind, "start_s": 0.0, "end_s": 4.0}


SPANS = {("va", "vb"): [{"video_a": "va", "video_b": "vb", "a_start_s": 1.0, "a_end_s": 5.0, "b_start_s": 0.0,
                         "b_end_s": 4.0, "samples": 8, "mean_hamming": 5.5, "symmetry": 0, "time_scale": 1.25,
                         "region_a": 1.0, "region_b": 0.6, "edited": True}]}


def test_an_edited_copy_shows_which_part_of_its_picture_matched():
    m = _member()
    assert _matched_region(m, SPANS) == 0.6  # b shows a at 60 %: picture-in-picture
    html = _outlined("<img>", 0.6)
    assert 'left:20.0%;top:20.0%;width:60.0%;height:60.0%' in html and html.startswith('<div class="matched"><img>')
    text = _segment_match(m, SPANS)
    assert "1.25x speed" in text and "centre 60% of this picture = the centre 100% of the kept one" in text


def test_whole_frames_and_other_kinds_are_not_outlined():
    assert _outlined("<img>", None) == "<img>"
    assert _matched_region(_member("segment"), SPANS) is None
    whole = {k: [dict(r, region_b=1.0) for r in v] for k, v in SPANS.items()}
    assert _matched_region(_member(), whole) is None
    assert _matched_region(_member(), {}) is None  # a pair verified on keyframes alone has no segment row
