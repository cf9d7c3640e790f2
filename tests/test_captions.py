"""Captions: a tiny randomly initialised LLaVA-architecture VLM, built offline from configs, saved to a
folder and loaded by path through the same code real weights take. No semantics are asserted."""
import json
import shutil

import numpy as np
import pyarrow.compute as pc
import pytest
import torch
import yaml

from curation.captions import VlmCaptioner, chat_messages, pick_frames, vlm_folder_problem
from pipelines.config import ConfigError, load_config
from pipelines.run import run_pipeline
from schemas import read_table

# a chat template of the kind models ship (one <image> per image entry), for the tiny test model
TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
            "{% else %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")


def build_tiny_vlm(folder) -> None:
    """A ~100k-parameter LLaVA (CLIP vision tower + Llama decoder) with a byte-level BPE tokenizer, saved to `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor, PreTrainedTokenizerFast)

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<s>", "</s>", "<unk>", "<image>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["a person walks a dog along the beach at sunset", "the camera pans over a city street"], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                  extra_special_tokens={"image_token": "<image>"})
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                               tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", chat_template=TEMPLATE,
                               num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64, projection_dim=32),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


QWEN_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{% if c['type'] == 'image' %}"
                 "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tiny_qwen2_vl(folder) -> None:
    """A tiny Qwen2-VL (another family: dynamic resolution, M-RoPE), tokenizer built offline, saved to `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(["a dog on the beach", "the camera pans over a street"],
                            trainers.BpeTrainer(vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", extra_special_tokens={
        "image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "vision_start_token": "<|vision_start|>",
        "vision_end_token": "<|vision_end|>"})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=56 * 56 * 4, patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                                 chat_template=QWEN_TEMPLATE)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=1024, rope_scaling={"type": "mrope", "mrope_section": [2, 2, 4]},
                         bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vlm") / "tiny-llava"
    build_tiny_vlm(folder)
    return folder


def _frames(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (72, 128, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_tiny_vlm_captions_clips_through_the_chat_template(family, tiny_vlm, tmp_path):
    folder = tiny_vlm
    if family == "qwen2_vl":
        folder = tmp_path / "tiny-qwen2-vl"
        build_tiny_qwen2_vl(folder)
    cap = VlmCaptioner(str(folder), "Describe this clip.", frames_per_clip=2, max_new_tokens=12, batch_size=2)
    clips = [_frames(3, 0), _frames(1, 1), _frames(2, 2)]  # 3 clips: two batches, different frame counts
    texts = cap.caption_clips(clips)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert cap.caption_clips(clips) == texts  # greedy decoding: same frames, same captions
    with pytest.raises(ValueError, match="at least one frame"):
        cap.caption_clips([[]])


def test_frames_and_messages():
    frames = _frames(5, 3)
    picked = pick_frames(frames, 3)
    assert [id(f) for f in picked] == [id(frames[0]), id(frames[2]), id(frames[4])]
    assert len(pick_frames(frames[:2], 3)) == 2
    content = chat_messages("Say it.", 2)[0]["content"]
    assert [c["type"] for c in content] == ["image", "image", "text"]


def test_a_path_that_is_not_a_vlm_fails_config_validation(tmp_path, tiny_vlm):
    assert vlm_folder_problem(str(tiny_vlm)) is None
    (tmp_path / "empty").mkdir()
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "weights.bin").write_bytes(b"x")
    for path, says in [(tmp_path / "missing", "not a folder"), (tmp_path / "weights.bin", "not a folder"),
                       (tmp_path / "empty", "no config.json"), (tmp_path / "bert", "not an image-text-to-text model")]:
        with pytest.raises(ConfigError, match=says) as e:
            load_config(overrides={"caption": {"model": str(path)}})
        assert str(e.value).startswith("config key 'caption.model'") and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="frames_per_clip"):
        load_config(overrides={"caption": {"model": str(tiny_vlm), "frames_per_clip": 4}})
    with pytest.raises(ConfigError, match="caption.device"):
        load_config(overrides={"caption": {"device": "tpu"}})


def test_every_kept_clip_gets_a_caption_and_reruns_reuse_them(ray_local, demo_data, tiny_vlm, tmp_path):
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "caption": {"model": str(tiny_vlm), "max_new_tokens": 12, "batch_size": 4},
        "stages": {"text": {"enabled": False}},  # the text stage has its own tests
    }))
    data = tmp_path / "input"  # a part of the demo set: captioned clips, a duplicate and a dropped clip
    data.mkdir()
    for name in ("cuts.mp4", "pan_h2.mp4", "pan_h2_copy.mp4", "static.mp4"):
        shutil.copy(demo_data / name, data / name)
    out = tmp_path / "out"
    record = run_pipeline(str(data), str(out), load_config(cfg_path), log=lambda *_: None)
    clips = read_table(str(out / "clips"), "clips")
    rows = clips.select(["caption", "caption_words", "drop_reasons", "kept"]).to_pylist()
    # kept by filter and dedup = no reason other than the caption hygiene ones
    captioned = [r for r in rows if all(x.startswith("caption_") for x in r["drop_reasons"])]
    assert len(captioned) >= 5 and len(captioned) < len(rows)
    assert all(isinstance(r["caption"], str) and r["caption_words"] is not None for r in captioned)
    assert all(r["caption"] is None for r in rows if r not in captioned)  # dropped clips are not captioned
    curated = read_table(str(out / "curated"), "curated")
    assert curated.column("caption").null_count == 0
    assert not any(line.startswith("caption") for line in record.not_configured)
    assert record.counts["caption"]["clips_to_caption"] == len(captioned)
    assert record.counts["caption"]["caption_errors"] == 0

    # the dashboard shows captions under thumbnails and counts them
    import duckdb
    from curation.dashboard.build import build_dashboard

    db, html = build_dashboard(str(out))
    with duckdb.connect(str(db), read_only=True) as con:
        captioned_n, curated_n = con.execute("SELECT captioned, captioned_curated FROM caption_counts").fetchone()
    assert captioned_n == len(captioned) and curated_n == curated.num_rows
    page = html.read_text()
    assert "<h3>Captions</h3>" in page and page.count('<q class="caption">') >= 1

    # a rerun that has to assemble again finds every caption in the cache
    (out / "_work" / "final.json").unlink()
    again = run_pipeline(str(data), str(out), load_config(cfg_path), log=lambda *_: None)
    assert again.counts["caption"]["clips_to_caption"] == 0
    assert again.counts["caption"]["already_captioned"] == len(captioned)
    assert read_table(str(out / "clips"), "clips").column("caption").to_pylist() == clips.column("caption").to_pylist()
