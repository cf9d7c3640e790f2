"""Autoencoder training config: plain dataclasses, every default with its unit.

Loaded from YAML (`load_config`) or built in code; `to_dict` goes into every
checkpoint so a checkpoint says how it was made.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelConfig:
    """Autoencoder geometry. Default: a causal video VAE (diffusers AutoencoderKLWan), 4x time, 8x8 space, c16.

    kind "video": 3-D causal convolutions; the first frame is encoded alone, so an image is a 1-frame video
    and T frames (T = 1 + temporal_factor * k) become T' = 1 + k latent frames.
    kind "image": the 2-D per-frame AutoencoderKL (Stable Diffusion's; f8c4 is its published geometry).
    Compression (RGB values per latent value) of both defaults: 3*4*8*8 / 16 = 3*8*8 / 4 = 48.
    """

    kind: str = "video"  # video | image
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)  # channels per level; levels - 1 = log2(spatial factor)
    latent_channels: int = 16
    layers_per_block: int = 2
    temporal_factor: int = 4  # video only: frames per latent frame after the first (1, 2 or 4; windows stay 1 + 4k)
    norm_num_groups: int = 32  # image only (the video VAE uses RMS norm)
    pretrained: str | None = None  # local diffusers folder (any class named in its config.json); overrides the geometry
    # A fresh model's posterior log-variance starts at this constant (its quant_conv rows zeroed): the diffusers
    # init gives logvar ~ 0, std ~ 1 against latent means of std ~ 0.2, so the decoder first learns from noise.
    # None: the diffusers init. (Not shown to help yet: notes/vae.md, issue 23.)
    init_logvar: float | None = None
    # DC-AE's space-to-channel shortcuts around the networks (training/autoencoder/shortcut.py); the model starts
    # as a fixed low-pass codec and learns the residual (video: 12 latent channels; image: 3, each frame's means)
    shortcut: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("video", "image"):
            raise ValueError(f"model.kind must be 'video' or 'image', not {self.kind!r}")
        if self.temporal_factor not in (1, 2, 4):
            raise ValueError(f"model.temporal_factor must be 1, 2 or 4 (got {self.temporal_factor})")
        levels = len(self.block_out_channels)
        if self.kind == "video" and self.temporal_factor.bit_length() - 1 > levels - 1:
            raise ValueError(f"model.temporal_factor {self.temporal_factor} needs more than {levels} levels")
        if self.kind == "video" and any(c % self.block_out_channels[0] for c in self.block_out_channels):
            raise ValueError("model.block_out_channels: every level must be a multiple of the first (video kind)")


@dataclass
class DataConfig:
    manifest: str = ""  # fsspec URI of a curated/clips table (file or folder)
    table: str = "curated"  # "curated" or "clips"
    fps: float | None = 8.0  # frames/s the clip is resampled to (None = every source frame)
    size: int = 256  # training crop side, pixels
    min_crop_scale: float = 0.5  # random crop side as a fraction of the frame's short side, lower bound
    clip_frames: int = 17  # frames T per training window (1 + temporal_factor * k; 1 = single frames)
    windows_per_clip: int = 2  # windows drawn from a clip per visit (one decode per visit)
    image_prob: float = 0.0  # probability that a step trains on the windows' first frames only (T = 1: images)
    holdout_fraction: float = 0.02  # share of clips (by clip_id hash) kept out for evaluation
    batch_size: int = 8
    num_workers: int = 2
    storage_options: dict = field(default_factory=dict)


@dataclass
class LossConfig:
    l1_weight: float = 1.0
    mse_weight: float = 0.0  # squared error over all values (PSNR's own measure), next to L1
    perceptual_weight: float = 1.0  # LPIPS if lpips_path is set, else multi-scale gradient L1 (weight-free)
    lpips_path: str | None = None  # TorchScript module f(x, y) -> (N,) distances, inputs in [-1, 1]
    kl_weight: float = 1e-6  # on the KL summed over latent elements, per image pixel (LDM convention)
    gan_weight: float = 0.0  # 0 = no PatchGAN
    gan_start: int = 50_000  # step at which the adversarial term switches on
    disc_lr: float = 1e-4
    disc_layers: int = 3  # PatchGAN depth; 3 = 70 px patches (needs crops >= ~64 px), 1 for tiny crops
    eq_prob: float = 0.0  # EQ-VAE: probability of a latent/image transform per step (arXiv 2502.09509)
    # Diffusability (Skorokhodov et al. 2025, arXiv 2502.14831): D(down(z)) must match down(x)
    diff_weight: float = 0.0  # weight of that scale-equivariance term (0 = off)
    diff_prob: float = 1.0  # probability of adding the term per step
    diff_temporal: bool = False  # also halve time (causal: first frame kept, the rest average-pooled by 2)
    # Warm-up of the extra terms: before aux_start steps only the reconstruction (L1, MSE, KL) trains; the
    # perceptual, EQ-VAE and diffusability terms then ramp in linearly over aux_ramp steps. They shape a
    # reconstruction that exists; before that they only slow it down.
    aux_start: int = 0  # steps
    aux_ramp: int = 0  # steps


@dataclass
class TrainConfig:
    out_dir: str = "runs/ae"
    steps: int = 100_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.01
    warmup_steps: int = 500  # linear LR warmup
    lr_schedule: str = "constant"  # after warmup: constant, or cosine down to min_lr_ratio x lr at `steps`
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # upper bound: step t uses min(ema_decay, (1 + t) / (10 + t)), so early EMA follows the model
    seed: int = 0
    ckpt_every: int = 1000  # steps
    log_every: int = 10  # steps; metrics.jsonl line
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = True  # autocast on CUDA only
    progress: bool = True  # tqdm bar


@dataclass
class AEConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, values: dict[str, Any]):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {sorted(unknown)}")
    kwargs = {}
    for k, v in values.items():
        default = getattr(cls(), k) if k in names else None
        kwargs[k] = tuple(v) if isinstance(default, tuple) and v is not None else v
    return cls(**kwargs)


def check_config(cfg: AEConfig) -> AEConfig:
    """Fail fast, in one line, on settings that would only break later (inside a DataLoader worker)."""
    m, d = cfg.model, cfg.data
    if m.kind == "video" and not m.pretrained and (d.clip_frames - 1) % 4:
        # AutoencoderKLWan encodes the first frame, then chunks of 4 frames, whatever its temporal factor
        raise ValueError(f"data.clip_frames must be 1 + 4*k for the video model (got {d.clip_frames})")
    if d.clip_frames < 1 or d.windows_per_clip < 1:
        raise ValueError("data.clip_frames and data.windows_per_clip must be >= 1")
    for name in ("image_prob",):
        if not 0.0 <= getattr(d, name) <= 1.0:
            raise ValueError(f"data.{name} must be in [0, 1]")
    if cfg.train.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"train.lr_schedule must be 'constant' or 'cosine' (got {cfg.train.lr_schedule!r})")
    for name in ("eq_prob", "diff_prob"):
        if not 0.0 <= getattr(cfg.loss, name) <= 1.0:
            raise ValueError(f"loss.{name} must be in [0, 1]")
    return cfg


def config_from_dict(d: dict[str, Any]) -> AEConfig:
    """Build an AEConfig from nested dicts (sections model/data/loss/train); unknown keys are errors."""
    unknown = set(d) - {"model", "data", "loss", "train"}
    if unknown:
        raise ValueError(f"autoencoder config: unknown section(s) {sorted(unknown)}")
    return check_config(AEConfig(
        model=_build(ModelConfig, d.get("model") or {}),
        data=_build(DataConfig, d.get("data") or {}),
        loss=_build(LossConfig, d.get("loss") or {}),
        train=_build(TrainConfig, d.get("train") or {}),
    ))


def load_config(path: str | Path) -> AEConfig:
    return config_from_dict(yaml.safe_load(Path(path).read_text()) or {})


def tiny_config(kind: str = "image", **train_overrides: Any) -> AEConfig:
    """A CPU-sized model for tests and demos: f4 (and 4x time for video); 4 latent channels (image) or 8 (video)."""
    video = kind == "video"
    cfg = AEConfig(
        model=ModelConfig(kind=kind, block_out_channels=(8, 16, 16) if video else (16, 32, 64),
                          latent_channels=8 if video else 4, layers_per_block=1, norm_num_groups=8),
        data=DataConfig(size=32, batch_size=2 if video else 4, num_workers=0,
                        clip_frames=5 if video else 1, windows_per_clip=1 if video else 2),
        train=TrainConfig(lr=1e-3, warmup_steps=0, ema_decay=0.9, ckpt_every=50, progress=False),
    )
    for k, v in train_overrides.items():
        setattr(cfg.train, k, v)
    return cfg
