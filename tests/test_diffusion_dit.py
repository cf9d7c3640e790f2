"""Spatiotemporal DiT: shapes for any (T', H', W') incl. images and padding, 3-D patch layout, adaLN-Zero init,
factorised attention locality, condition and caption embedding with missing values and CFG dropout,
gradient checkpointing."""
import pytest
import torch

from training.diffusion.dit import DiT, DiTConfig, build_dit, sincos_pos_embed_3d

torch.set_num_threads(1)


def _perturbed(cfg):
    torch.manual_seed(0)
    m = DiT(cfg)
    with torch.no_grad():  # leave adaLN-Zero so inputs and conditions can change the output
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("attention", ["full", "factorised"])
@pytest.mark.parametrize("shape", [(4, 1, 6, 10), (4, 5, 7, 9), (4, 8, 4, 4)])  # image, odd sizes, clip
def test_any_shape_round_trips(attention, shape):
    m = _perturbed(DiTConfig.named("tiny", in_channels=4, temporal_patch=2, attention=attention))
    x = torch.randn(2, *shape)
    y = m(x, torch.zeros(2))
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_adaln_zero_output_is_zero_at_init():
    m = build_dit("tiny", 2, text_dim=8)
    out = m(torch.randn(2, 2, 3, 8, 8), torch.randn(2), torch.randn(2, 3), None, torch.randn(2, 5, 8))
    assert out.abs().max() == 0


def test_unpatchify_inverts_3d_patch_layout():
    m = build_dit("tiny", 3, patch_size=2, temporal_patch=2)
    x = torch.arange(2 * 3 * 4 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 4, 6)  # (N, C, T, H, W)
    # tokens in (t, h, w) order, each holding its (pt, ph, pw, C) values
    patches = x.reshape(2, 3, 2, 2, 2, 2, 3, 2).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(2, 2 * 2 * 3, 2 * 2 * 2 * 3)
    torch.testing.assert_close(m.unpatchify(patches, (2, 2, 3)), x)


def test_pos_embed_distinct_per_position_and_shared_across_grids():
    pe = sincos_pos_embed_3d(64, 3, 4, 5)
    assert pe.shape == (60, 64) and torch.cdist(pe, pe).add(torch.eye(60)).min() > 0
    # a longer clip or a wider bucket keeps the positions of the cells they share (integer grid positions)
    big = sincos_pos_embed_3d(64, 4, 4, 7).reshape(4, 4, 7, 64)
    torch.testing.assert_close(big[:3, :, :5].reshape(60, 64), pe)


def test_factorised_spatial_block_keeps_frames_apart():
    """Depth 1, factorised: only a spatial block, so frame 1's output cannot depend on frame 0's input; with
    full attention it does."""
    x = torch.randn(1, 2, 3, 4, 4)
    x2 = x.clone()
    x2[:, :, 0] += 1.0
    for attention, independent in (("factorised", True), ("full", False)):
        m = _perturbed(DiTConfig(in_channels=2, hidden_size=32, depth=1, num_heads=2, attention=attention)).eval()
        same = torch.allclose(m(x, torch.zeros(1))[:, :, 1:], m(x2, torch.zeros(1))[:, :, 1:], atol=1e-6)
        assert same == independent, attention


def test_temporal_patch_pads_and_crops_images():
    m = _perturbed(DiTConfig.named("tiny", in_channels=2, temporal_patch=4)).eval()
    img = torch.randn(3, 2, 1, 4, 4)
    assert m(img, torch.zeros(3)).shape == img.shape


def test_missing_conditions_use_null_embedding_and_dropout_is_unconditional():
    m = _perturbed(DiTConfig.named("tiny", in_channels=2, p_uncond=1.0, text_dim=8)).eval()
    x, t = torch.randn(2, 2, 2, 4, 4), torch.zeros(2)
    cond, none = torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.bool)
    text, tmask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    uncond = m(x, t, None, None)
    torch.testing.assert_close(m(x, t, cond, none), uncond)  # all missing == unconditional
    torch.testing.assert_close(m(x, t, cond * float("nan"), none), uncond)  # NaN-safe
    torch.testing.assert_close(m(x, t, None, None, text, ~tmask), uncond)  # masked caption == no caption
    assert not torch.allclose(m(x, t, cond, ~none), uncond)  # present conditions matter
    assert not torch.allclose(m(x, t, None, None, text, tmask), uncond)  # so does a caption
    m.train()  # p_uncond = 1: every sample dropped to unconditional in training, caption included
    torch.testing.assert_close(m(x, t, cond, ~none, text, tmask), uncond)


def test_padding_tokens_of_a_caption_are_ignored():
    m = _perturbed(DiTConfig.named("tiny", in_channels=2, text_dim=8)).eval()
    x, t = torch.randn(1, 2, 2, 4, 4), torch.zeros(1)
    text = torch.randn(1, 6, 8)
    mask = torch.tensor([[True, True, True, False, False, False]])
    other = text.clone()
    other[:, 3:] = torch.randn(1, 3, 8)
    torch.testing.assert_close(m(x, t, None, None, text, mask), m(x, t, None, None, other, mask))
    torch.testing.assert_close(m(x, t, None, None, text, mask), m(x, t, None, None, text[:, :3], mask[:, :3]))


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for ckpt in (False, True):
        m = _perturbed(DiTConfig.named("tiny", in_channels=2, grad_checkpointing=ckpt, p_uncond=0.0)).train()
        m(torch.ones(2, 2, 2, 4, 4), torch.zeros(2)).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def test_bad_config_fails_fast():
    with pytest.raises(ValueError, match="attention"):
        DiTConfig(in_channels=2, attention="sparse")
    with pytest.raises(ValueError, match="unknown DiT size"):
        DiTConfig.named("huge", in_channels=2)
