"""`vidcurate export OUT --format webdataset|csv`: the curated clips as training shards or an Open-Sora CSV."""
import sys


def _export(args) -> int:
    from tqdm import tqdm

    from curation.export import DestinationError, ExportConfigError, ExportError, ExportParams, export_run
    from pipelines.cli import EXIT_FAILED, CliError
    from pipelines.config import ConfigError, load_config
    from pipelines.review_cli import require_run
    from schemas import SchemaError

    try:
        params = ExportParams(format=args.format, shard_size=args.shard_size, crf=args.crf, preset=args.preset,
                              encoder_threads=args.encoder_threads, audio=not args.no_audio, workers=args.workers,
                              crop_to_content=not args.full_frame)
        cfg = load_config(args.config)
    except (ExportConfigError, ConfigError) as e:
        raise CliError(str(e)) from None
    out_options = cfg.output.storage_options
    require_run(args.out, out_options)
    bar = tqdm(desc=f"export {args.format}", unit="clip", dynamic_ncols=True, disable=args.quiet)
    try:
        summary = export_run(args.out, params, args.dest, out_options=out_options,
                             source_options=cfg.input.storage_options, dest_options=out_options,
                             on_clip=lambda row: bar.update(1))
    except (DestinationError, ExportError, SchemaError) as e:
        raise CliError(str(e)) from None
    finally:
        bar.close()
    c = summary["counts"]
    print(f"exported {c['exported_this_run']} clips this run ({c['already_exported']} already there), "
          f"{c['errors']} error rows, {c['clips_with_audio']} with audio; "
          f"{summary['clips_per_s']} clips/s, {summary['mb_per_s']} MB/s")
    for kind, n in summary["errors_by_type"].items():
        print(f"  errors: {kind} x{n}")
    print(f"output: {summary['destination']}  (report: export_report.json, export_report.parquet)")
    return EXIT_FAILED if c["clips"] and not c["exported"] else 0


def add_parsers(sub) -> None:
    from curation.export.params import FORMATS, X264_PRESETS, ExportParams

    d = ExportParams()
    e = sub.add_parser(
        "export", help="write the curated clips as WebDataset shards or an Open-Sora CSV with clip files",
        description="Each curated clip becomes an mp4 of exactly its frames (H.264, display geometry, cropped to the "
                    "clip's content box: letterbox, pillarbox or coloured bars cut off) with its audio "
                    "trimmed to the same span (AAC), plus its manifest row as json. Resumable (finished shards or "
                    "clips are skipped), atomic per shard, deterministic bytes for the same input and settings. "
                    "A clip whose source vanished or changed becomes an error row in export_report.json/.parquet.")
    e.add_argument("out", metavar="OUT", help="a run folder written by `vidcurate run` (reads OUT/curated)")
    e.add_argument("--format", choices=FORMATS, default=d.format, help=f"default {d.format}")
    e.add_argument("--dest", metavar="URI", help="where to write (local, s3://...); default OUT/export/<format>")
    e.add_argument("--shard-size", type=int, default=d.shard_size, metavar="BYTES",
                   help=f"WebDataset: bytes per tar shard (default {d.shard_size})")
    e.add_argument("--crf", type=int, default=d.crf, help=f"libx264 constant rate factor, 0..51 (default {d.crf})")
    e.add_argument("--preset", choices=X264_PRESETS, default=d.preset, help=f"libx264 preset (default {d.preset})")
    e.add_argument("--encoder-threads", type=int, default=d.encoder_threads,
                   help=f"libx264 threads per clip; fixed so bytes do not depend on the machine (default {d.encoder_threads})")
    e.add_argument("--workers", type=int, default=d.workers, help=f"videos encoded side by side (default {d.workers})")
    e.add_argument("--no-audio", action="store_true", help="do not keep the sources' audio")
    e.add_argument("--full-frame", action="store_true",
                   help="keep the whole frame, bars included (default: crop each clip to its content box, edges "
                        "rounded inwards to even px; clips without a box are exported whole)")
    e.add_argument("--config", metavar="FILE", help="the run's YAML: input/output storage_options for the sources, OUT and --dest")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_export)


if __name__ == "__main__":
    sys.exit("use: vidcurate export OUT --format webdataset|csv")
