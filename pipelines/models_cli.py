"""`vidcurate models pull NAME...` and `vidcurate models list`: model weights by Hugging Face name, fetched once.

A run never downloads (curation/models.py): names resolve from the standard Hugging Face
cache, which `pull` fills ahead of the run with huggingface_hub.
"""
from pipelines.cli import EXIT_OK, CliError


def _cmd_pull(args) -> int:
    from curation.models import RECOMMENDED, pull

    names = list(args.names) or [name for name, _ in RECOMMENDED.values()] * args.recommended
    if not names:
        raise CliError("models pull needs NAME... (org/name or org/name/file) or --recommended")
    for name in names:
        try:
            path = pull(name)
        except ValueError as e:
            raise CliError(str(e)) from None
        except Exception as e:  # no network, unknown repo, gated model: huggingface_hub's own message
            raise CliError(f"cannot pull {name!r}: {type(e).__name__}: {e}") from None
        print(f"{name}: {path}")
    return EXIT_OK


def model_settings(cfg) -> list[tuple[str, str | None, str]]:
    """(setting, value after `auto` resolution, why it is off) of every model setting of a config."""
    return [("aesthetic.clip_checkpoint", cfg.aesthetic.clip_checkpoint, cfg.unresolved.get("aesthetic.clip_checkpoint", "")),
            ("aesthetic.head_checkpoint", cfg.aesthetic.head_checkpoint, cfg.unresolved.get("aesthetic.head_checkpoint", "")),
            ("caption.model", cfg.caption.model, cfg.unresolved.get("caption.model", ""))]


def _cmd_list(args) -> int:
    from curation.models import OPEN_CLIP_FILES, RECOMMENDED, hub_ref, is_cached
    from pipelines.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        raise CliError(str(e)) from None
    print(f"{'setting':<26} {'model':<70} status")
    for setting, value, why in model_settings(cfg):
        if value is None:
            print(f"{setting:<26} {'-':<70} off ({why or 'null in the config'})")
            continue
        candidates = OPEN_CLIP_FILES if setting == "aesthetic.clip_checkpoint" else ()
        where = is_cached(value, candidates) if hub_ref(value) else value
        print(f"{setting:<26} {value:<70} {'cached: ' + where if hub_ref(value) else 'path: ' + where}")
    print("\nrecommended (what `auto` stands for; `vidcurate models pull --recommended` fetches them):")
    for setting, (name, what) in RECOMMENDED.items():
        state = "cached" if is_cached(name, OPEN_CLIP_FILES if setting == "aesthetic.clip_checkpoint" else ()) else "not cached"
        print(f"  {setting:<24} {name:<70} {state}  ({what})")
    return EXIT_OK


def add_parsers(sub) -> None:
    m = sub.add_parser("models", help="fetch model weights by Hugging Face name once, and list what the config needs",
                       description="Model settings take a path, an fsspec URI or a Hugging Face name (org/name, "
                                   "hf-hub:org/name, org/name/file). Runs read names from the local Hugging Face cache "
                                   "only and never download: `pull` fills the cache first.")
    msub = m.add_subparsers(dest="models_verb", required=True, metavar="ACTION")
    p = msub.add_parser("pull", help="download models into the standard Hugging Face cache (huggingface_hub)")
    p.add_argument("names", nargs="*", metavar="NAME", help="org/name (a whole repo) or org/name/file (one file)")
    p.add_argument("--recommended", action="store_true", help="the models `auto` stands for in the default config")
    p.set_defaults(func=_cmd_pull)
    ls = msub.add_parser("list", help="the config's model settings, resolved, and what the cache holds")
    ls.add_argument("--config", metavar="FILE", help="YAML merged over pipelines/configs/default.yaml")
    ls.set_defaults(func=_cmd_list)
