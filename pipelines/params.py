"""Config sections → the plain parameter objects curation/ takes."""
from curation.audio import AudioParams
from curation.camera_motion import CameraMotionParams
from curation.content_box import BoxParams
from curation.decode import DecodePlan
from curation.defects import DefectParams
from curation.filters import Rule
from curation.motion import MotionParams
from curation.quality import QualityParams
from curation.scan import ScanParams
from curation.split import SplitParams
from pipelines.config import PipelineConfig


def scan_params(cfg: PipelineConfig) -> ScanParams:
    d, s = cfg.decode, cfg.split
    return ScanParams(
        decode=DecodePlan(sample_fps=d.sample_fps, analysis_short_side=d.analysis_short_side,
                          detector_width=d.detector_width, threads=d.threads),
        split=SplitParams(**s.model_dump(), near_black_luma=cfg.quality.near_black_luma),
        motion=MotionParams(method=cfg.motion.method, dis_preset=cfg.motion.dis_preset, dis_finest_scale=cfg.motion.dis_finest_scale,
                            static_threshold=cfg.motion.static_threshold),
        camera=CameraMotionParams(**cfg.camera_motion.model_dump()),
        quality=QualityParams(black_luma_p99=cfg.quality.near_black_luma),
        keyframes_at=tuple(cfg.aesthetic.frames_at),
        audio=AudioParams(**cfg.audio.model_dump()),
        defects=DefectParams(**cfg.defects.model_dump()),
        box=BoxParams(**cfg.content_box.model_dump()),
    )


# Bump when the scan's code changes what it writes for the same config (v2: display-aspect frames,
# symmetric sign-bit pHash, black runs that keep detected cuts; v3: fade_frac, flicker, shake, blockiness;
# v4: a `samples` table of per-sample pHashes; v5: shake and fade_frac null where too few frames;
# v6: the content box, every picture score inside it, keyframes cropped to it, luma_p99; v7: camera_motion_type):
# parts from older code are rescanned, not mixed in.
SCAN_CODE_VERSION = 7


def scan_config_subset(cfg: PipelineConfig) -> dict:
    """The config that decides the scan stage's output: a change here (or in SCAN_CODE_VERSION) means rescanning."""
    return {k: cfg.public_dict()[k] for k in ("decode", "split", "motion", "camera_motion", "quality", "content_box", "audio", "defects")} | {
        "frames_at": cfg.aesthetic.frames_at, "scan_code_version": SCAN_CODE_VERSION,
    }


def embed_config_subset(cfg: PipelineConfig) -> dict:
    a = cfg.aesthetic
    return {"clip_model": a.clip_model, "clip_checkpoint": a.clip_checkpoint, "head_checkpoint": a.head_checkpoint,
            "model_config_file": a.model_config_file, "reduce": a.reduce, "scan": scan_config_subset(cfg)}


def filter_rules(cfg: PipelineConfig) -> list[Rule]:
    return [Rule(r.column, r.min, r.max, r.reason) for r in cfg.filters]


def _bounds(rule: dict) -> str:
    """`sharpness < 2.5 or > 90 fails`: the values a rule drops."""
    parts = [f"< {rule['min']:g}" if rule.get("min") is not None else None,
             f"> {rule['max']:g}" if rule.get("max") is not None else None]
    return f"{rule['column']} {' or '.join(p for p in parts if p)} fails"


def describe_filters(cfg: PipelineConfig) -> str:
    """The effective filter rules (defaults merged with the user's, see config.merge_filters), one line per rule,
    each saying where it comes from; then the default rules the config switched off."""
    from pipelines.config import default_config_dict

    defaults = {r["reason"]: r for r in default_config_dict().get("filters") or []}
    lines = [f"filter rules ({len(cfg.filters)}; a clip failing any of them is dropped with its reason; null never fails):"]
    for rule in cfg.filters:
        r = rule.model_dump()
        base = defaults.get(rule.reason)
        if base is None:
            origin = "added by your config"
        elif (base["column"], base.get("min"), base.get("max")) == (r["column"], r["min"], r["max"]):
            origin = "default"
        else:
            origin = f"your config; default was {_bounds(base)}"
        lines.append(f"  {rule.reason:<20} {_bounds(r):<40} ({origin})")
    off = [reason for reason in defaults if reason not in {r.reason for r in cfg.filters}]
    if off:
        lines.append(f"  switched off by your config: {', '.join(off)}")
    return "\n".join(lines)
