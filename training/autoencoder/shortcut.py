"""A causal video autoencoder with DC-AE's non-parametric shortcuts (Chen et al. 2024, "Deep Compression
Autoencoder", arXiv 2410.10733, "residual autoencoding"), on diffusers' AutoencoderKLWan.

The latent mean is the network's output plus a space-to-channel picture of the clip in its first 12 channels: the
first frame (a latent step of its own) as 2x2 stacked quarter-resolution means; each later step's 4 frames as their
own 1/8 area means, side by side (4 x RGB). The decoded clip is the network's output plus the inverse (channels back
to space, bicubic up). With the output convolutions zeroed at init, the model starts as that fixed codec, which on
frames after the first is exactly the bicubic-from-the-latent-grid bar that eval-ae reports (and above it on the
first frame); training learns the residual, so the networks add detail instead of first having to learn to
reproduce the mean colour, which is where the plain model stalls at a CPU budget (notes/vae.md). The latent keeps
its size: 16 x T' x H/8 x W/8 values for a 1 + 4k frame clip.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, AutoencoderKLWan

SHORTCUT_CHANNELS = 12  # latent channels the shortcut fills (of at least 12)


def _steps(t: int, temporal: int) -> list[tuple[int, int]]:
    """(first frame, frames) of each latent step of a 1 + temporal*k frame clip: the first frame alone (causal)."""
    return [(0, 1)] + [(1 + temporal * i, temporal) for i in range((t - 1) // temporal)]


def _to_channels(frames: torch.Tensor, spatial: int) -> torch.Tensor:
    """The frames of one latent step (N, 3, k, H, W) -> (N, 12, H/s, W/s): one frame as 2x2 stacked quarter-resolution
    means; k > 1 frames as each frame's 1/s area means, side by side (3k channels), zero padded to 12."""
    n, c, k, h, w = frames.shape
    if k == 1:
        return F.pixel_unshuffle(F.avg_pool2d(frames[:, :, 0], spatial // 2), 2)
    means = F.avg_pool2d(frames.transpose(1, 2).reshape(n * k, c, h, w), spatial).reshape(n, k * c, h // spatial, w // spatial)
    return F.pad(means, (0, 0, 0, 0, 0, SHORTCUT_CHANNELS - k * c))


def _to_frames(z: torch.Tensor, k: int, spatial: int) -> torch.Tensor:
    """The inverse of `_to_channels` for one latent step (N, >=12, h, w) -> (N, 3, k, h*s, w*s), bicubic up."""
    n, _, h, w = z.shape
    if k == 1:
        quarter = F.pixel_shuffle(z[:, :SHORTCUT_CHANNELS], 2)
        return F.interpolate(quarter, scale_factor=spatial // 2, mode="bicubic", align_corners=False)[:, :, None]
    means = z[:, :3 * k].reshape(n * k, 3, h, w)
    full = F.interpolate(means, scale_factor=spatial, mode="bicubic", align_corners=False)
    return full.reshape(n, k, 3, h * spatial, w * spatial).transpose(1, 2)


def shortcut_down(x: torch.Tensor, spatial: int, temporal: int, channels: int) -> torch.Tensor:
    """Clips (N, 3, T, H, W) in [-1, 1] -> (N, channels, T', H/spatial, W/spatial): space (and time) to channels."""
    z = torch.stack([_to_channels(x[:, :, a:a + k], spatial) for a, k in _steps(x.shape[2], temporal)], 2)
    return F.pad(z, (0, 0, 0, 0, 0, 0, 0, channels - SHORTCUT_CHANNELS))


def shortcut_up(z: torch.Tensor, spatial: int, temporal: int) -> torch.Tensor:
    """Latents (N, C, T', h, w) -> clips (N, 3, 1 + temporal*(T'-1), h*spatial, w*spatial): `shortcut_down`'s inverse
    on its channels."""
    t = 1 + temporal * (z.shape[2] - 1)
    return torch.cat([_to_frames(z[:, :, i], k, spatial) for i, (_, k) in enumerate(_steps(t, temporal))], 2)


class _Shortcut:
    """What both shortcut classes share: the zero-initialised outputs and the decoded output plus the shortcut."""

    def zero_init_outputs(self) -> None:
        """Start as the fixed shortcut codec: the encoder adds nothing to the latent mean, the decoder nothing to the clip."""
        with torch.no_grad():
            c = self.quant_conv.out_channels // 2  # rows: mean, then log-variance
            self.quant_conv.weight[:c].zero_()
            self.quant_conv.bias[:c].zero_()
            self.decoder.conv_out.weight.zero_()
            self.decoder.conv_out.bias.zero_()

    @staticmethod
    def _plus(out: torch.Tensor, shortcut: torch.Tensor, return_dict: bool):
        """The decoder's output plus the shortcut's, clamped to [-1, 1], as diffusers' _decode returns it."""
        out = torch.clamp(out + shortcut, -1.0, 1.0)
        if not return_dict:
            return (out,)
        from diffusers.models.autoencoders.vae import DecoderOutput

        return DecoderOutput(sample=out)


class ShortcutWanVAE(_Shortcut, AutoencoderKLWan):
    """AutoencoderKLWan whose latent mean and decoded clip carry the shortcuts above (see the module docstring)."""

    @property
    def _factors(self) -> tuple[int, int]:
        return int(self.config.scale_factor_spatial), int(self.config.scale_factor_temporal)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        enc = super()._encode(x)  # (N, 2C, T', h, w): mean, log-variance
        c = self.config.z_dim
        spatial, temporal = self._factors
        return torch.cat([enc[:, :c] + shortcut_down(x, spatial, temporal, c), enc[:, c:]], 1)

    def _decode(self, z: torch.Tensor, return_dict: bool = True):
        spatial, temporal = self._factors
        return self._plus(super()._decode(z, return_dict=False)[0], shortcut_up(z, spatial, temporal), return_dict)


class ShortcutKL(_Shortcut, AutoencoderKL):
    """The per-frame 2-D AutoencoderKL with the same shortcut: each frame's 1/s area means (3 channels) in the first 3
    latent channels, bicubic up on decode. Untrained (outputs zeroed) it is exactly eval-ae's bicubic bar on every
    frame; the other latent_channels - 3 channels are the networks' own."""

    @property
    def _spatial(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        enc = super()._encode(x)  # (N, 2C, h, w): mean, log-variance
        means = F.avg_pool2d(x, self._spatial)  # (N, 3, h, w)
        return torch.cat([enc[:, :3] + means, enc[:, 3:]], 1)

    def _decode(self, z: torch.Tensor, return_dict: bool = True):
        up = F.interpolate(z[:, :3], scale_factor=self._spatial, mode="bicubic", align_corners=False)  # (N, 3, H, W)
        return self._plus(super()._decode(z, return_dict=False)[0], up, return_dict)
