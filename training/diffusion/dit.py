"""Diffusion Transformer (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers"), read top to bottom.

F_θ(x, c_noise, cond, cond_mask) for one latent frame: patchify → + fixed 2-D sin-cos positions →
adaLN-Zero blocks conditioned on c = emb(c_noise) + Σ_k emb_k(cond_k) → final adaLN layer → unpatchify.
Each scalar condition (aesthetic, motion, quality) gets its own Fourier-feature MLP; a missing value
(null in the table) *and* a condition dropped for classifier-free guidance both use that condition's
learned null embedding, so "unconditional" simply means "every condition missing".
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Named sizes: (hidden_size, depth, num_heads). S/B/L/XL are DiT's Table 1; tiny/mini are for CPU tests.
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (64, 2, 2),
    "mini": (128, 4, 4),
    "S": (384, 12, 6),
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "XL": (1152, 28, 16),
}


@dataclass
class DiTConfig:
    """Plain data describing a DiT; stored in checkpoints so a model can be rebuilt without code changes."""

    in_channels: int
    input_size: int | tuple[int, int]  # (H, W) of the latent frame; an int means square
    patch_size: int = 2
    hidden_size: int = 64
    depth: int = 2
    num_heads: int = 2
    mlp_ratio: float = 4.0
    num_conds: int = 3
    p_uncond: float = 0.1  # probability of dropping all conditions in training (classifier-free guidance)

    @classmethod
    def named(cls, size: str, **kw) -> "DiTConfig":
        hidden, depth, heads = SIZES[size]
        return cls(hidden_size=hidden, depth=depth, num_heads=heads, **kw)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x·(1 + scale) + shift, with per-sample (N, D) shift/scale broadcast over tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding (MAE / DiT), shape (grid_h*grid_w, dim)."""
    assert dim % 4 == 0, "hidden_size must be divisible by 4 for 2-D sin-cos embeddings"
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))  # (D/4,)
    ys, xs = np.meshgrid(np.arange(grid_h, dtype=np.float64), np.arange(grid_w, dtype=np.float64), indexing="ij")
    parts = []
    for pos in (ys.reshape(-1), xs.reshape(-1)):  # half the channels for each axis
        out = np.einsum("m,d->md", pos, omega)  # (T, D/4)
        parts += [np.sin(out), np.cos(out)]
    return torch.from_numpy(np.concatenate(parts, axis=1)).float()  # (T, D)


class FourierEmbedder(nn.Module):
    """Scalar → MLP(random Fourier features [cos 2πfx, sin 2πfx]) (Tancik et al. 2020; EDM's σ embedding)."""

    def __init__(self, hidden_size: int, num_freqs: int = 128, scale: float = 1.0):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_freqs) * scale)
        self.mlp = nn.Sequential(nn.Linear(2 * num_freqs, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = 2 * math.pi * x.float().unsqueeze(1) * self.freqs  # (N, F)
        return self.mlp(torch.cat([phase.cos(), phase.sin()], dim=1))  # (N, D)


class ConditionEmbedder(nn.Module):
    """Σ_k [mask_k ? emb_k(cond_k) : null_k]; in training, drops all conditions with prob. p_uncond (CFG)."""

    def __init__(self, num_conds: int, hidden_size: int, p_uncond: float):
        super().__init__()
        self.embedders = nn.ModuleList(FourierEmbedder(hidden_size) for _ in range(num_conds))
        self.null = nn.Parameter(torch.zeros(num_conds, hidden_size))
        self.p_uncond = p_uncond

    def forward(self, cond: torch.Tensor | None, mask: torch.Tensor | None, n: int) -> torch.Tensor:
        k = self.null.shape[0]
        if cond is None:  # unconditional: every condition missing
            cond = self.null.new_zeros(n, k)
            mask = torch.zeros(n, k, dtype=torch.bool, device=self.null.device)
        mask = torch.ones_like(cond, dtype=torch.bool) if mask is None else mask.bool()
        if self.training and self.p_uncond > 0:
            keep = torch.rand(n, device=cond.device) >= self.p_uncond  # (N,)
            mask = mask & keep.unsqueeze(1)  # (N, K)
        cond = torch.where(mask, cond, torch.zeros_like(cond))  # NaN-safe for missing values
        embs = torch.stack([e(cond[:, i]) for i, e in enumerate(self.embedders)], dim=1)  # (N, K, D)
        embs = torch.where(mask.unsqueeze(2), embs, self.null.unsqueeze(0).to(embs.dtype))  # (N, K, D)
        return embs.sum(1)  # (N, D)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape  # (N, T, D)
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, d // self.num_heads)  # (N, T, 3, H, D/H)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 × (N, H, T, D/H)
        x = F.scaled_dot_product_attention(q, k, v)  # (N, H, T, D/H)
        return self.proj(x.transpose(1, 2).reshape(n, t, d))  # (N, T, D)


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero: shift/scale/gate from c, gates zero at init (DiT sec. 3.2)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 × (N, D)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))  # (N, T, D)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))  # (N, T, D)
        return x


class FinalLayer(nn.Module):
    """adaLN then a linear map from each token to its p·p·C patch values."""

    def __init__(self, dim: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # 2 × (N, D)
        return self.linear(modulate(self.norm(x), shift, scale))  # (N, T, p·p·C)


class DiT(nn.Module):
    """F_θ(x, c_noise, cond, cond_mask) -> same shape as x: the raw network inside EDMPrecond."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        h, w = (cfg.input_size, cfg.input_size) if isinstance(cfg.input_size, int) else tuple(cfg.input_size)
        assert h % cfg.patch_size == 0 and w % cfg.patch_size == 0, "H and W must be multiples of patch_size"
        self.cfg = cfg
        d, p = cfg.hidden_size, cfg.patch_size
        self.grid_h, self.grid_w = h // p, w // p
        self.x_embedder = nn.Conv2d(cfg.in_channels, d, kernel_size=p, stride=p)  # patchify
        self.register_buffer("pos_embed", sincos_pos_embed_2d(d, self.grid_h, self.grid_w).unsqueeze(0), persistent=False)
        self.t_embedder = FourierEmbedder(d)
        self.c_embedder = ConditionEmbedder(cfg.num_conds, d, cfg.p_uncond)
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(d, p, cfg.in_channels)
        self._init_weights()

    def _init_weights(self):
        """DiT's init: Xavier linears, and zero for every adaLN modulation and the output layer (adaLN-Zero)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, p·p·C) -> (N, C, H, W)."""
        n, p, gh, gw, c = x.shape[0], self.cfg.patch_size, self.grid_h, self.grid_w, self.cfg.in_channels
        x = x.reshape(n, gh, gw, p, p, c)  # (N, h, w, p, p, C)
        x = torch.einsum("nhwpqc->nchpwq", x)  # (N, C, h, p, w, p)
        return x.reshape(n, c, gh * p, gw * p)  # (N, C, H, W)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[0]
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed  # (N, T, D), T = (H/p)·(W/p)
        c = self.t_embedder(c_noise) + self.c_embedder(cond, cond_mask, n)  # (N, D)
        for block in self.blocks:
            x = block(x, c)  # (N, T, D)
        x = self.final_layer(x, c)  # (N, T, p·p·C)
        return self.unpatchify(x)  # (N, C, H, W)


def build_dit(size: str, in_channels: int, input_size: int | tuple[int, int], patch_size: int = 2, num_conds: int = 3,
              p_uncond: float = 0.1) -> DiT:
    """A DiT of a named size (see SIZES) for latents of shape (in_channels, H, W), input_size = (H, W) or H = W."""
    return DiT(DiTConfig.named(size, in_channels=in_channels, input_size=input_size, patch_size=patch_size,
                               num_conds=num_conds, p_uncond=p_uncond))


__all__ = ["SIZES", "DiTConfig", "DiT", "build_dit"]
