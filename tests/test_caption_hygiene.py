"""Caption hygiene: word counts, n-gram loops, boilerplate openings, and the filter rules that drop on them."""
import pyarrow as pa
import pytest

from curation.caption_hygiene import boilerplate_words, hygiene_columns, repetition, words
from curation.filters import apply_filters
from pipelines.caption_stage import CAPTION_COLUMNS, with_captions
from pipelines.config import load_config
from pipelines.params import filter_rules
from schemas import TABLES, table_from_rows

GOOD = "A brown dog runs along a sandy beach while waves roll in under a cloudy sky."
LOOP = "a dog on a beach " * 12


def test_measures():
    assert words("It's a dog, running.") == ["it's", "a", "dog", "running"]
    assert repetition(words(GOOD)) == 0.0
    assert repetition(words(LOOP)) > 0.8
    assert repetition(["a", "b"]) == 0.0  # fewer words than n
    assert boilerplate_words(words("The video shows a dog on a beach.")) == 3
    assert boilerplate_words(words("In this video, a dog runs.")) == 3
    assert boilerplate_words(words("The video begins with a dog.")) == 4  # the longest matching opening
    assert boilerplate_words(words(GOOD)) == 0
    assert hygiene_columns("") == {"caption_words": 0, "caption_repetition": 0.0, "caption_boilerplate_words": 0}
    assert hygiene_columns(None) == {"caption_words": None, "caption_repetition": None, "caption_boilerplate_words": None}


def _clips(n: int) -> pa.Table:
    rows = [{"clip_id": f"c{i}", "video_id": "v", "uri": "file:///v.mp4", "clip_index": i, "start_frame": 0, "end_frame": 25,
             "num_frames": 25, "start_s": 0.0, "end_s": 1.0, "duration_s": 1.0, "fps": 25.0, "width": 64, "height": 36,
             "split_reason": "whole", "drop_reasons": [], "kept": True} for i in range(n)]
    return table_from_rows(rows, TABLES["clips"], "clips")



def test_default_rules_drop_bad_captions_and_keep_good_ones():
    captions = {"c0": GOOD, "c1": "", "c2": "A dog.", "c3": LOOP, "c4": "The video shows " + GOOD[0].lower() + GOOD[1:],
                "c5": GOOD}
    cfg = load_config()
    clips = _clips(6)  # c5 is dropped already: it gets no caption
    clips = clips.set_column(clips.schema.get_field_index("kept"), "kept", pa.array([True] * 5 + [False]))
    clips = clips.set_column(clips.schema.get_field_index("drop_reasons"), "drop_reasons",
                             pa.array([[]] * 5 + [["static"]], pa.list_(pa.string())))
    table = table_from_rows([{"clip_id": k, "caption": v} for k, v in captions.items()], TABLES["captions"], "captions")
    out = with_captions(clips, table, cfg.caption.repetition_ngram, filter_rules(cfg))
    reasons = dict(zip(out.column("clip_id").to_pylist(), out.column("drop_reasons").to_pylist()))
    assert reasons["c0"] == [] and reasons["c4"] == []  # boilerplate is measured, not dropped by default
    assert set(reasons["c1"]) == {"caption_empty", "caption_too_short"}
    assert reasons["c2"] == ["caption_too_short"]
    assert reasons["c3"] == ["caption_repetitive"]
    assert out.column("caption").to_pylist()[5] is None and out.column("caption_words").to_pylist()[5] is None
    assert out.column("caption_boilerplate_words").to_pylist()[4] == 3
    assert out.column("kept").to_pylist() == [True, False, False, False, True, False]


def test_boilerplate_rule_when_configured():
    cfg = load_config(overrides={"filters": [{"column": "caption_boilerplate_words", "max": 0, "reason": "caption_boilerplate"}]})
    clips = _clips(2)
    for name in CAPTION_COLUMNS[1:]:
        values = [hygiene_columns(t)[name] for t in ("In this video a cat sleeps.", GOOD)]
        clips = clips.set_column(clips.schema.get_field_index(name), name, pa.array(values, clips.schema.field(name).type))
    out = apply_filters(clips, filter_rules(cfg))
    assert out.column("drop_reasons").to_pylist() == [["caption_boilerplate"], []]


@pytest.mark.parametrize("column", ["caption_words", "caption_repetition", "caption_boilerplate_words", "text_area_frac"])
def test_rules_accept_the_new_columns(column):
    cfg = load_config(overrides={"filters": [{"column": column, "max": 1, "reason": "x"}]})
    [rule] = [r for r in filter_rules(cfg) if r.reason == "x"]
    assert (rule.column, rule.min, rule.max) == (column, None, 1)
    clips = _clips(3)
    values = pa.array([0, 1, 2], clips.schema.field(column).type)  # at the bound is kept, above it dropped
    clips = clips.set_column(clips.schema.get_field_index(column), column, values)
    assert apply_filters(clips, [rule]).column("drop_reasons").to_pylist() == [[], [], ["x"]]
