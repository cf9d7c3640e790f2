"""Spatiotemporal Diffusion Transformer (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers",
extended to video as in Latte / Open-Sora), read top to bottom.

F_θ(x, c_noise, cond, cond_mask, text, text_mask) for a latent clip x of shape (N, C, T', H', W'):
3-D patchify (pt, ph, pw) → + fixed 3-D sin-cos positions computed for *this* (T', H', W') grid (so any
length and aspect bucket runs through one model; an image is T' = 1) → adaLN-Zero blocks conditioned on
c = emb(c_noise) + Σ_k emb_k(cond_k) + MLP(pooled text) → final adaLN layer → unpatchify.

Attention is full over all T'·H'·W' tokens, or (attention="factorised") alternates spatial blocks (tokens of
one frame attend to each other) and temporal blocks (tokens at one place attend across time), Latte's
variant 1, for long clips. With text, every block also cross-attends to the caption's token embeddings
(PixArt-α), with a learned always-visible null token so a dropped or missing caption is well defined.

Each scalar condition (aesthetic, motion, quality) gets its own Fourier-feature MLP; a missing value (null in
the table) *and* a condition dropped for classifier-free guidance both use that condition's learned null
embedding; a dropped caption shows only the null token. "Unconditional" means "every condition missing".
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

# Named sizes: (hidden_size, depth, num_heads). S/B/L/XL are DiT's Table 1; tiny/mini are for CPU tests.
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (64, 2, 2),
    "mini": (128, 4, 4),
    "S": (384, 12, 6),
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "XL": (1152, 28, 16),
}
ATTENTION = ("full", "factorised")


@dataclass
class DiTConfig:
    """Plain data describing a DiT; stored in checkpoints so a model can be rebuilt without code changes."""

    in_channels: int
    patch_size: int = 2  # spatial patch (ph = pw), latent cells
    temporal_patch: int = 1  # pt, latent frames; T' is zero-padded up to a multiple (an image is T' = 1)
    hidden_size: int = 64
    depth: int = 2
    num_heads: int = 2
    mlp_ratio: float = 4.0
    num_conds: int = 3
    p_uncond: float = 0.1  # probability of dropping every condition (scores and caption) in training (CFG)
    attention: str = "full"  # "full" over all tokens, or "factorised" (spatial/temporal blocks alternate)
    text_dim: int = 0  # width of the text encoder's token embeddings; 0 = no text conditioning
    grad_checkpointing: bool = False  # recompute block activations in backward: less memory, ~30% more compute

    def __post_init__(self):
        if self.attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {self.attention!r}")
        if self.hidden_size % 2 or self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be even and divisible by num_heads {self.num_heads}")

    @classmethod
    def named(cls, size: str, **kw) -> "DiTConfig":
        if size not in SIZES:
            raise ValueError(f"unknown DiT size {size!r}; known: {list(SIZES)}")
        hidden, depth, heads = SIZES[size]
        return cls(hidden_size=hidden, depth=depth, num_heads=heads, **kw)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x·(1 + scale) + shift, with per-sample (N, D) shift/scale broadcast over tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def _sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    """[sin(pos·ω), cos(pos·ω)] with ω_i = 10000^(-i/(dim/2)) (Vaswani et al. 2017), shape (len(pos), dim)."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim // 2))  # (dim/2,)
    out = np.einsum("m,d->md", pos.astype(np.float64), omega)  # (M, dim/2)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)  # (M, dim)


def sincos_pos_embed_3d(dim: int, grid_t: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Fixed 3-D sin-cos position embedding for a (t, h, w) token grid, shape (t·h·w, dim), t-major order.

    Channels are split in three even parts (time gets the remainder), one 1-D embedding per axis, as MAE/DiT
    do in 2-D. Positions are integer grid indices, so a wider bucket adds columns rather than stretching them.
    """
    assert dim % 2 == 0, "hidden_size must be even for sin-cos embeddings"
    d_hw = 2 * (dim // 6)  # even share for each spatial axis
    d_t = dim - 2 * d_hw  # the rest (even) for time
    t, h, w = np.meshgrid(np.arange(grid_t), np.arange(grid_h), np.arange(grid_w), indexing="ij")
    parts = [_sincos_1d(d_t, t.reshape(-1)), _sincos_1d(d_hw, h.reshape(-1)), _sincos_1d(d_hw, w.reshape(-1))]
    return torch.from_numpy(np.concatenate(parts, axis=1)).float()  # (L, D)


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
    """Σ_k [mask_k ? emb_k(cond_k) : null_k]: a missing (or CFG-dropped) condition uses its null embedding."""

    def __init__(self, num_conds: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedders = nn.ModuleList(FourierEmbedder(hidden_size) for _ in range(num_conds))
        self.null = nn.Parameter(torch.zeros(num_conds, hidden_size)) if num_conds else None  # DDP: no unused params

    def forward(self, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.null is None:  # a model without scalar conditions
            return cond.new_zeros(cond.shape[0], self.hidden_size)  # (N, D)
        cond = torch.where(mask, cond, torch.zeros_like(cond))  # (N, K), NaN-safe for missing values
        embs = torch.stack([e(cond[:, i]) for i, e in enumerate(self.embedders)], dim=1)  # (N, K, D)
        embs = torch.where(mask.unsqueeze(2), embs, self.null.unsqueeze(0).to(embs.dtype))  # (N, K, D)
        return embs.sum(1)  # (N, D)


class TextEmbedder(nn.Module):
    """Caption tokens (N, L, D_text) → context (N, L+1, D) with a learned null token that is always visible,
    and a pooled vector (masked mean of the context, null token included) for adaLN."""

    def __init__(self, text_dim: int, hidden_size: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(text_dim, hidden_size), nn.GELU(approximate="tanh"),
                                  nn.Linear(hidden_size, hidden_size))  # PixArt-α's caption projection
        self.null = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.pool = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, text: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = text.shape[0]
        ctx = torch.cat([self.proj(text), self.null.expand(n, -1, -1).to(text.dtype)], dim=1)  # (N, L+1, D)
        mask = torch.cat([mask, mask.new_ones(n, 1)], dim=1)  # (N, L+1): the null token is always visible
        w = mask.unsqueeze(2).to(ctx.dtype)  # (N, L+1, 1)
        pooled = self.pool((ctx * w).sum(1) / w.sum(1))  # (N, D)
        return ctx, mask, pooled


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (SDPA: flash / memory-efficient kernels on CUDA)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape  # (N, L, D)
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, d // self.num_heads)  # (N, L, 3, H, D/H)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 × (N, H, L, D/H)
        x = F.scaled_dot_product_attention(q, k, v)  # (N, H, L, D/H)
        return self.proj(x.transpose(1, 2).reshape(n, t, d))  # (N, L, D)


class CrossAttention(nn.Module):
    """Multi-head attention from the video tokens to the caption context, masked (True = attend)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape  # (N, L, D)
        h = self.num_heads
        q = self.q(x).reshape(n, t, h, d // h).transpose(1, 2)  # (N, H, L, D/H)
        k, v = self.kv(ctx).reshape(n, ctx.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)  # 2 × (N, H, S, D/H)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (N, H, L, D/H)
        return self.proj(x.transpose(1, 2).reshape(n, t, d))  # (N, L, D)


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero: shift/scale/gate from c, gates zero at init (DiT sec. 3.2).

    `mode` says which tokens attend to each other: "full" (all), "spatial" (within a frame) or "temporal"
    (across frames at one place); the block regroups its (N, T·H·W, D) input accordingly.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, mode: str = "full", text: bool = False):
        super().__init__()
        self.mode = mode
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.cross = CrossAttention(dim, num_heads) if text else None
        self.norm_cross = nn.LayerNorm(dim, elementwise_affine=True, eps=1e-6) if text else None
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def _self_attention(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        n, _, d = x.shape  # (N, L, D), L = t·h·w
        t, hw = grid[0], grid[1] * grid[2]
        if self.mode == "spatial":
            return self.attn(x.reshape(n * t, hw, d)).reshape(n, t * hw, d)  # frames as the batch
        if self.mode == "temporal":
            y = x.reshape(n, t, hw, d).transpose(1, 2).reshape(n * hw, t, d)  # (N·h·w, t, D): places as the batch
            return self.attn(y).reshape(n, hw, t, d).transpose(1, 2).reshape(n, t * hw, d)  # (N, L, D)
        return self.attn(x)  # (N, L, D)

    def forward(self, x: torch.Tensor, c: torch.Tensor, grid: tuple[int, int, int], ctx: torch.Tensor | None = None,
                ctx_mask: torch.Tensor | None = None) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 × (N, D)
        x = x + gate_msa.unsqueeze(1) * self._self_attention(modulate(self.norm1(x), shift_msa, scale_msa), grid)  # (N, L, D)
        if self.cross is not None:
            x = x + self.cross(self.norm_cross(x), ctx, ctx_mask)  # (N, L, D); proj zero at init
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))  # (N, L, D)
        return x


class FinalLayer(nn.Module):
    """adaLN then a linear map from each token to its pt·ph·pw·C patch values."""

    def __init__(self, dim: int, patch_values: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch_values)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # 2 × (N, D)
        return self.linear(modulate(self.norm(x), shift, scale))  # (N, L, pt·ph·pw·C)


class DiT(nn.Module):
    """F_θ(x, c_noise, cond, cond_mask, text, text_mask) -> same shape as x: the raw network inside EDMPrecond."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        d, pt, p = cfg.hidden_size, cfg.temporal_patch, cfg.patch_size
        self.patch = (pt, p, p)
        self.x_embedder = nn.Conv3d(cfg.in_channels, d, kernel_size=self.patch, stride=self.patch)  # 3-D patchify
        self.t_embedder = FourierEmbedder(d)
        self.c_embedder = ConditionEmbedder(cfg.num_conds, d)
        self.text_embedder = TextEmbedder(cfg.text_dim, d) if cfg.text_dim else None
        modes = ["spatial", "temporal"] if cfg.attention == "factorised" else ["full"]
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.num_heads, cfg.mlp_ratio, modes[i % len(modes)], bool(cfg.text_dim))
                                    for i in range(cfg.depth))
        self.final_layer = FinalLayer(d, pt * p * p * cfg.in_channels)
        self._pos_cache: dict = {}
        self._init_weights()

    def _init_weights(self):
        """DiT's init: Xavier linears, and zero for every adaLN modulation, cross-attention output and the output
        layer (adaLN-Zero: every block starts as the identity, the network's output as 0)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
            if block.cross is not None:
                nn.init.zeros_(block.cross.proj.weight)
                nn.init.zeros_(block.cross.proj.bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def pos_embed(self, grid: tuple[int, int, int], device, dtype) -> torch.Tensor:
        """(1, t·h·w, D) sin-cos positions of a token grid, cached per grid."""
        key = (grid, str(device), dtype)
        if key not in self._pos_cache:
            self._pos_cache[key] = sincos_pos_embed_3d(self.cfg.hidden_size, *grid).to(device, dtype).unsqueeze(0)
        return self._pos_cache[key]

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(N, t·h·w, pt·ph·pw·C) -> (N, C, t·pt, h·ph, w·pw)."""
        n, c, (t, h, w), (pt, ph, pw) = x.shape[0], self.cfg.in_channels, grid, self.patch
        x = x.reshape(n, t, h, w, pt, ph, pw, c)  # (N, t, h, w, pt, ph, pw, C)
        x = torch.einsum("nthwopqc->nctohpwq", x)  # (N, C, t, pt, h, ph, w, pw)
        return x.reshape(n, c, t * pt, h * ph, w * pw)  # (N, C, T, H, W)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None,
                cond_mask: torch.Tensor | None = None, text: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None) -> torch.Tensor:
        n, _, t0, h0, w0 = x.shape  # (N, C, T', H', W')
        pad = [(-s) % p for s, p in zip((t0, h0, w0), self.patch)]
        x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))  # (N, C, T, H, W), multiples of the patch
        x = self.x_embedder(x)  # (N, D, t, h, w)
        grid = tuple(x.shape[2:])  # (t, h, w)
        x = x.flatten(2).transpose(1, 2)  # (N, L, D), L = t·h·w
        x = x + self.pos_embed(grid, x.device, x.dtype)  # (N, L, D)

        if cond is None:  # unconditional: every condition missing
            cond = x.new_zeros(n, self.cfg.num_conds)
            cond_mask = torch.zeros(n, self.cfg.num_conds, dtype=torch.bool, device=x.device)
        cond_mask = torch.ones_like(cond, dtype=torch.bool) if cond_mask is None else cond_mask.bool()  # (N, K)
        if self.text_embedder is not None and text is None:  # no caption: only the null token will be visible
            text = x.new_zeros(n, 1, self.cfg.text_dim)  # (N, 1, D_text)
            text_mask = torch.zeros(n, 1, dtype=torch.bool, device=x.device)  # (N, 1)
        if text is not None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=x.device) if text_mask is None \
                else text_mask.bool()  # (N, S)
        if self.training and self.cfg.p_uncond > 0:  # CFG dropout: the scores and the caption together
            keep = torch.rand(n, device=x.device) >= self.cfg.p_uncond  # (N,)
            cond_mask = cond_mask & keep.unsqueeze(1)  # (N, K)
            text_mask = None if text is None else text_mask & keep.unsqueeze(1)  # (N, S)
        c = self.t_embedder(c_noise) + self.c_embedder(cond, cond_mask)  # (N, D)

        ctx = ctx_mask = None
        if self.text_embedder is not None:
            ctx, ctx_mask, pooled = self.text_embedder(text.to(x.dtype), text_mask)  # (N, S+1, D), (N, S+1), (N, D)
            c = c + pooled  # (N, D)

        for block in self.blocks:
            if self.cfg.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, c, grid, ctx, ctx_mask, use_reentrant=False)  # (N, L, D)
            else:
                x = block(x, c, grid, ctx, ctx_mask)  # (N, L, D)
        x = self.final_layer(x, c)  # (N, L, pt·ph·pw·C)
        x = self.unpatchify(x, grid)  # (N, C, T, H, W)
        return x[:, :, :t0, :h0, :w0]  # (N, C, T', H', W'): the padding cropped off


def build_dit(size: str, in_channels: int, patch_size: int = 2, temporal_patch: int = 1, **kw) -> DiT:
    """A DiT of a named size (see SIZES) for latents with `in_channels` channels; any (T', H', W') runs."""
    return DiT(DiTConfig.named(size, in_channels=in_channels, patch_size=patch_size, temporal_patch=temporal_patch,
                               **kw))


__all__ = ["SIZES", "DiTConfig", "DiT", "build_dit", "sincos_pos_embed_3d"]
