"""Text conditioning with tiny random text encoders saved to folders and loaded by path: a T5 encoder with a
word-level tokenizer (transformers) and an open_clip text tower. The DiT trained on captioned toy latents must
follow the caption under guidance, and `sample --prompt` runs through the CLI."""
import pytest
import torch
from safetensors.torch import load_file

from training.diffusion.cli import main
from training.diffusion.samplers import sample
from training.diffusion.toy import mode_patterns, write_gmm_latents
from training.diffusion.train import TrainConfig, latent_stats_of, load_checkpoint, train
from training.text_encoders import TextEncoder, TextEncoderConfig, encode_captions, lookup, write_tiny_open_clip, \
    write_tiny_t5

torch.set_num_threads(1)
K, SHAPE = 4, (2, 4, 4)


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    return write_tiny_t5(tmp_path_factory.mktemp("t5") / "t5", "pattern 0 1 2 3 a red ball".split())


def test_t5_encoder_from_folder(t5):
    enc = TextEncoder(TextEncoderConfig("t5", str(t5), max_length=8))
    tokens, mask = enc.encode(["pattern 2", "a red ball pattern 1", ""])
    assert tokens.shape == (3, 8, enc.dim) and enc.dim == 32
    assert mask.sum(1).tolist() == [3, 6, 1]  # words + </s>; the empty caption is </s> alone
    assert (tokens[~mask] == 0).all() and tokens[mask].abs().sum() > 0
    again, _ = enc.encode(["pattern 2"])
    torch.testing.assert_close(again[0], tokens[0])


def test_open_clip_text_tower(tmp_path):
    ckpt, arch = write_tiny_open_clip(tmp_path)
    enc = TextEncoder(TextEncoderConfig("open_clip", str(ckpt), model_name="vidcurate-tiny-text-test",
                                        model_config=str(arch)))
    tokens, mask = enc.encode(["a red ball", "a photo of a cat moving left"])
    assert tokens.shape == (2, 16, 32) and mask.sum(1).tolist() == [5, 9]  # <sot> words <eot>
    assert (tokens[~mask] == 0).all()
    torch.testing.assert_close(tokens[0, 1], tokens[1, 1])  # causal: "a" first in both
    assert not torch.allclose(tokens[0, 2], tokens[1, 2])  # "red" vs "photo"


def test_bad_text_encoder_config_fails_fast(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        TextEncoderConfig("t5", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="kind"):
        TextEncoderConfig("bert", str(tmp_path))
    with pytest.raises(ValueError, match="not a T5 encoder"):
        TextEncoder(TextEncoderConfig("t5", str(tmp_path)))


def test_each_distinct_caption_is_encoded_once(t5):
    enc = TextEncoder(TextEncoderConfig("t5", str(t5), max_length=8, batch_size=2))
    seen = []
    encode = enc.encode
    enc.encode = lambda caps: seen.extend(caps) or encode(caps)
    tokens, mask = encode_captions(enc, ["pattern 1", "pattern 2", "pattern 1", "a red ball", "pattern 2"])
    assert sorted(seen) == ["a red ball", "pattern 1", "pattern 2"]
    assert tokens.shape == (5, 4, 32)  # trimmed to the longest caption (3 words + </s>)
    torch.testing.assert_close(tokens[0], tokens[2])
    got, got_mask = lookup(tokens, mask, torch.tensor([1, -1]))
    torch.testing.assert_close(got[0], tokens[1])
    assert (got[1] == 0).all() and not got_mask[1].any()  # no caption: nothing visible


@pytest.fixture(scope="module")
def trained(tmp_path_factory, t5):
    """A tiny DiT trained on still 1-frame windows of 4 patterns captioned "pattern m", no scalar conditions."""
    root = tmp_path_factory.mktemp("captioned")
    latents = write_gmm_latents(root / "latents", n_clips=64, k=K, shape=SHAPE, frames=1, captions=True)
    cfg = TrainConfig(latents_dir=str(latents), out_dir=str(root / "run"), steps=150, batch_size=32, lr=3e-3,
                      warmup=10, ema_decay=0.9, p_uncond=0.2, progress=False, conditions=(),
                      text_encoder={"kind": "t5", "path": str(t5), "max_length": 8})
    result = train(cfg)
    return result["checkpoint"], t5


@pytest.mark.parametrize("m", range(K))
def test_guidance_follows_the_caption(trained, m):
    checkpoint, t5 = trained
    net, ck = load_checkpoint(checkpoint)
    assert ck["dit"]["text_dim"] == 32 and ck["config"]["text_encoder"]["kind"] == "t5"
    tokens, mask = TextEncoder(TextEncoderConfig("t5", str(t5), max_length=8)).encode([f"pattern {m}"])
    z = sample(net, (SHAPE[0], 1, *SHAPE[1:]), 100, guidance=2.0, steps=16, text=tokens[0], text_mask=mask[0],
               generator=torch.Generator().manual_seed(1))
    z = latent_stats_of(ck).denormalize(z)[:, :, 0]  # (N, C, H, W)
    d = ((z.flatten(1)[:, None] - mode_patterns(K, SHAPE).flatten(1)[None]) ** 2).mean(2)
    frac = (d.argmin(1) == m).float().mean().item()
    print(f"caption 'pattern {m}': fraction of samples on pattern {m}: {frac:.2f}")
    assert frac > 0.7  # chance is 0.25


def test_sample_prompt_cli(trained, tmp_path):
    checkpoint, t5 = trained
    out = tmp_path / "s"
    assert main(["sample", "--checkpoint", checkpoint, "--out", str(out), "--n", "2", "--steps", "4",
                 "--prompt", "pattern 3", "--guidance", "3", "--text-encoder-path", str(t5)]) == 0
    assert load_file(str(out / "samples.safetensors"))["latents"].shape == (2, 2, 1, 4, 4)
