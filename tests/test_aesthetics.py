"""CLIP scorer and aesthetic head, with tiny randomly initialised models saved to files."""
import fsspec
import numpy as np
import pytest
import skimage.data
import torch
from safetensors.torch import save_file

from curation.aesthetics import AestheticHead, ClipScorer, load_aesthetic_head, load_clip_encoder

TINY_NAME = "vidcurate-test-tiny-vit"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
# the original repo's nn.Sequential: Linear(0) Dropout(1) Linear(2) Dropout(3) Linear(4) Dropout(5) Linear(6) Linear(7)
ORIGINAL_KEYS = {f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Paths of a tiny random open_clip model (.pt) and a random D=32 head (.safetensors, .pth)."""
    import open_clip

    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**TINY_CFG)
    torch.save(model.state_dict(), d / "tiny_clip.pt")
    head = AestheticHead(32)
    save_file(head.state_dict(), str(d / "head.safetensors"))
    torch.save(head.state_dict(), d / "head.pth")
    return {"clip": str(d / "tiny_clip.pt"), "head_st": str(d / "head.safetensors"), "head_pth": str(d / "head.pth")}


@pytest.fixture(scope="module")
def scorer(ckpts):
    return ClipScorer(TINY_NAME, ckpts["clip"], ckpts["head_st"], device="cpu", batch_size=4,
                      model_config=TINY_CFG)


def _frames() -> list[np.ndarray]:
    return [skimage.data.astronaut()[:300, :400], skimage.data.coffee(), skimage.data.chelsea(),
            skimage.data.rocket(), np.zeros((90, 160, 3), np.uint8)]


def _head_by_hand(sd: dict, x: np.ndarray) -> np.ndarray:
    """The LAION head as plain matmuls (dropout is identity at inference)."""
    for i in (0, 2, 4, 6, 7):
        x = x @ sd[f"layers.{i}.weight"].T + sd[f"layers.{i}.bias"]
    return x[..., 0]


def test_head_layout_matches_original_repo():
    head = AestheticHead(768)
    assert set(head.state_dict()) == ORIGINAL_KEYS
    shapes = [tuple(head.state_dict()[f"layers.{i}.weight"].shape) for i in (0, 2, 4, 6, 7)]
    assert shapes == [(1024, 768), (128, 1024), (64, 128), (16, 64), (1, 16)]


@pytest.mark.parametrize("kind", ["head_st", "head_pth"])
def test_head_output_equals_hand_computation(ckpts, kind):
    head = load_aesthetic_head(ckpts[kind])
    sd = {k: v.double().numpy() for k, v in torch.load(ckpts["head_pth"], weights_only=True).items()}
    emb = np.random.default_rng(1).normal(size=(3, 32))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    got = head(torch.tensor(emb, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(got, _head_by_hand(sd, emb), atol=1e-5)
    assert not head.training  # dropout off


def test_head_saved_with_original_key_naming_loads(tmp_path):
    rng = np.random.default_rng(2)
    dims = [(1024, 768), (128, 1024), (64, 128), (16, 64), (1, 16)]
    sd = {}
    for i, (o, n) in zip((0, 2, 4, 6, 7), dims):
        sd[f"layers.{i}.weight"] = torch.tensor(rng.normal(0, 0.02, (o, n)), dtype=torch.float32)
        sd[f"layers.{i}.bias"] = torch.tensor(rng.normal(0, 0.02, (o,)), dtype=torch.float32)
    torch.save(sd, tmp_path / "sac+logos+ava1-l14-linearMSE.pth")
    head = load_aesthetic_head(str(tmp_path / "sac+logos+ava1-l14-linearMSE.pth"))
    assert head.input_dim == 768
    x = np.eye(768)[:2]
    np.testing.assert_allclose(head(torch.tensor(x, dtype=torch.float32)).detach().numpy(),
                               _head_by_hand({k: v.double().numpy() for k, v in sd.items()}, x), atol=1e-5)


def test_head_loads_from_fsspec_uri(ckpts):
    fs = fsspec.filesystem("memory")
    with open(ckpts["head_st"], "rb") as f:
        fs.pipe("/vidcurate-test/head.safetensors", f.read())
    remote = load_aesthetic_head("memory://vidcurate-test/head.safetensors")
    local = load_aesthetic_head(ckpts["head_st"])
    x = torch.ones(1, 32) / np.sqrt(32)
    assert torch.equal(remote(x), local(x))


def test_bad_checkpoints_are_refused(tmp_path, ckpts):
    with pytest.raises(FileNotFoundError):
        load_aesthetic_head(str(tmp_path / "missing.pth"))
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError):
        load_aesthetic_head(str(tmp_path / "other.pth"))
    (tmp_path / "head.ckpt").write_bytes(b"not a supported format")
    with pytest.raises(ValueError):
        load_aesthetic_head(str(tmp_path / "head.ckpt"))
    torch.save(AestheticHead(768).state_dict(), tmp_path / "h768.pth")
    with pytest.raises(ValueError):  # a 768-d head on a 32-d model
        ClipScorer(TINY_NAME, ckpts["clip"], str(tmp_path / "h768.pth"), model_config=TINY_CFG)


def test_encoder_loads_the_saved_weights(ckpts):
    model, preprocess = load_clip_encoder(TINY_NAME, ckpts["clip"], "cpu", model_config=TINY_CFG)
    saved = torch.load(ckpts["clip"], weights_only=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert preprocess is not None and not model.training


def test_score_clips_shapes_norms_and_determinism(scorer):
    f = _frames()
    clips = [f[:3], f[3:4], f[3:]]
    out = scorer.score_clips(clips)
    assert len(out) == 3
    for emb, aesthetic in out:
        assert len(emb) == 32 and isinstance(aesthetic, float)
        assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)
    again = scorer.score_clips(clips)
    assert [e for e, _ in again] == [e for e, _ in out] and [a for _, a in again] == [a for _, a in out]
    # batching across clips does not change a clip's result
    alone = scorer.score_clips([f[:3]])[0]
    np.testing.assert_allclose(alone[0], out[0][0], atol=1e-5)
    assert alone[1] == pytest.approx(out[0][1], abs=1e-5)
    assert scorer.score_clips([]) == []
    with pytest.raises(ValueError):
        scorer.score_clips([[]])


def test_clip_embedding_and_aesthetic_are_defined_by_frames(scorer, ckpts):
    frames = _frames()[:3]
    per_frame = scorer.embed_frames(frames).double().numpy()  # (3, 32), unit rows
    np.testing.assert_allclose(np.linalg.norm(per_frame, axis=1), 1.0, atol=1e-5)
    emb, aesthetic = scorer.score_clips([frames])[0]
    mean = per_frame.mean(axis=0)
    np.testing.assert_allclose(emb, mean / np.linalg.norm(mean), atol=1e-5)
    sd = {k: v.double().numpy() for k, v in torch.load(ckpts["head_pth"], weights_only=True).items()}
    by_hand = _head_by_hand(sd, per_frame)
    assert aesthetic == pytest.approx(by_hand.mean(), abs=1e-5)
    low = ClipScorer(TINY_NAME, ckpts["clip"], ckpts["head_pth"], reduce="min", model_config=TINY_CFG)
    assert low.score_clips([frames])[0][1] == pytest.approx(by_hand.min(), abs=1e-5)


def test_no_head_means_no_aesthetic(ckpts):
    s = ClipScorer(TINY_NAME, ckpts["clip"], None, model_config=TINY_CFG)
    (emb, aesthetic), = s.score_clips([_frames()[:2]])
    assert aesthetic is None and len(emb) == 32


def test_missing_clip_checkpoint_fails_instead_of_random_weights(tmp_path):
    with pytest.raises(FileNotFoundError):
        ClipScorer(TINY_NAME, str(tmp_path / "nope.pt"), None, model_config=TINY_CFG)
