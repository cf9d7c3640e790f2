"""DiT: shapes (square and not), adaLN-Zero init, condition embedding with missing values and CFG dropout."""
import torch

from training.diffusion.dit import DiT, DiTConfig, build_dit, sincos_pos_embed_2d

torch.set_num_threads(1)


def test_rectangular_latents_round_trip_shapes():
    m = build_dit("tiny", in_channels=4, input_size=(6, 10), patch_size=2)
    x = torch.randn(3, 4, 6, 10)
    assert m(x, torch.zeros(3)).shape == x.shape
    assert m.pos_embed.shape == (1, 15, 64)


def test_adaln_zero_output_is_zero_at_init():
    m = build_dit("tiny", 2, 8)
    assert m(torch.randn(2, 2, 8, 8), torch.randn(2), torch.randn(2, 3)).abs().max() == 0


def test_unpatchify_inverts_patch_layout():
    m = build_dit("tiny", 3, 4, patch_size=2)
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    patches = x.reshape(2, 3, 2, 2, 2, 2).permute(0, 2, 4, 3, 5, 1).reshape(2, 4, 12)  # (N, T, p·p·C)
    torch.testing.assert_close(m.unpatchify(patches), x)


def test_pos_embed_distinct_per_position():
    pe = sincos_pos_embed_2d(16, 3, 5)
    assert pe.shape == (15, 16) and torch.cdist(pe, pe).add(torch.eye(15)).min() > 0


def _perturbed(cfg):
    torch.manual_seed(0)
    m = DiT(cfg)
    with torch.no_grad():  # leave adaLN-Zero so conditions can change the output
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def test_missing_conditions_use_null_embedding_and_dropout_is_unconditional():
    m = _perturbed(DiTConfig.named("tiny", in_channels=2, input_size=4, p_uncond=1.0)).eval()
    x, t = torch.randn(2, 2, 4, 4), torch.zeros(2)
    cond = torch.randn(2, 3)
    none = torch.zeros(2, 3, dtype=torch.bool)
    uncond = m(x, t, None, None)
    torch.testing.assert_close(m(x, t, cond, none), uncond)  # all missing == unconditional
    torch.testing.assert_close(m(x, t, cond.nan_to_num() * 0 + float("nan"), none), uncond)  # NaN-safe
    assert not torch.allclose(m(x, t, cond, ~none), uncond)  # present conditions matter
    m.train()  # p_uncond = 1: every sample dropped to unconditional in training
    torch.testing.assert_close(m(x, t, cond, ~none), uncond)
