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
    """AutoencoderKL geometry. Default = Stable Diffusion f8c4 (4 levels -> downsampling 2**3)."""

    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    latent_channels: int = 4
    layers_per_block: int = 2
    norm_num_groups: int = 32
    pretrained: str | None = None  # local folder in diffusers format (SD/SDXL VAE); overrides the geometry


@dataclass
class DataConfig:
    manifest: str = ""  # fsspec URI of a curated/clips table (file or folder)
    table: str = "curated"  # "curated" or "clips"
    fps: float | None = 4.0  # frames/s sampled within each clip (None = every frame)
    size: int = 256  # training crop side, pixels
    min_crop_scale: float = 0.5  # random crop side as a fraction of the frame's short side, lower bound
    frames_per_clip: int = 4  # frames drawn from a clip per visit (one decode per visit)
    holdout_fraction: float = 0.02  # share of clips (by clip_id hash) kept out for evaluation
    batch_size: int = 8
    num_workers: int = 2
    storage_options: dict = field(default_factory=dict)


@dataclass
class LossConfig:
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0  # LPIPS if lpips_path is set, else multi-scale gradient L1 (weight-free)
    lpips_path: str | None = None  # TorchScript module f(x, y) -> (N,) distances, inputs in [-1, 1]
    kl_weight: float = 1e-6  # on the KL summed over latent elements, per image pixel (LDM convention)
    gan_weight: float = 0.0  # 0 = no PatchGAN
    gan_start: int = 50_000  # step at which the adversarial term switches on
    disc_lr: float = 1e-4
    disc_layers: int = 3  # PatchGAN depth; 3 = 70 px patches (needs crops >= ~64 px), 1 for tiny crops
    eq_prob: float = 0.0  # EQ-VAE: probability of a latent/image transform per step (arXiv 2502.09509)


@dataclass
class TrainConfig:
    out_dir: str = "runs/ae"
    steps: int = 100_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.01
    warmup_steps: int = 500  # linear LR warmup; constant afterwards (resume needs no total)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
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


def config_from_dict(d: dict[str, Any]) -> AEConfig:
    """Build an AEConfig from nested dicts (sections model/data/loss/train); unknown keys are errors."""
    unknown = set(d) - {"model", "data", "loss", "train"}
    if unknown:
        raise ValueError(f"autoencoder config: unknown section(s) {sorted(unknown)}")
    return AEConfig(
        model=_build(ModelConfig, d.get("model") or {}),
        data=_build(DataConfig, d.get("data") or {}),
        loss=_build(LossConfig, d.get("loss") or {}),
        train=_build(TrainConfig, d.get("train") or {}),
    )


def load_config(path: str | Path) -> AEConfig:
    return config_from_dict(yaml.safe_load(Path(path).read_text()) or {})


def tiny_config(**train_overrides: Any) -> AEConfig:
    """A CPU-sized model for tests and demos: f4, 4 latent channels."""
    cfg = AEConfig(
        model=ModelConfig(block_out_channels=(16, 32, 64), latent_channels=4, layers_per_block=1, norm_num_groups=8),
        data=DataConfig(size=32, batch_size=4, num_workers=0, frames_per_clip=2),
        train=TrainConfig(lr=1e-3, warmup_steps=0, ema_decay=0.9, ckpt_every=50, progress=False),
    )
    for k, v in train_overrides.items():
        setattr(cfg.train, k, v)
    return cfg
