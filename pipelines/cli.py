"""`vidcurate <verb>`: the command line. Errors are one line and a non-zero exit code.

Exit codes: 0 success (also "nothing to do"), 1 the work failed, 2 bad usage,
config, input or output.

One convention for every verb: a bad option, a missing input or a bad config is
one line on stderr (`vidcurate: error: ...`) and exit 2, no traceback. A verb
raises CliError, or SystemExit(message) where it must not import pipelines/
(the training verbs); main() prints either the same way.
"""
import argparse
import importlib
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code attached."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse with our convention: a usage error is a CliError (one line), not usage text and exit 2."""

    def error(self, message: str):
        raise CliError(f"{message} (see `{self.prog} --help`)")


VERB_MODULES = ("pipelines.review_cli", "pipelines.export_cli", "training.autoencoder.cli", "training.diffusion.cli",
                "pipelines.ablation_study", "pipelines.models_cli")


def one_line(message: str) -> str:
    """A message as one line: "invalid config:\n  a\n  b" -> "invalid config: a; b"."""
    lines = [ln.strip() for ln in str(message).strip().splitlines() if ln.strip()] or ["failed"]
    head, rest = lines[0], lines[1:]
    return head + (" " if head.endswith(":") else "; ") + "; ".join(rest) if rest else head


def _cmd_run(args) -> int:
    from curation.sources import InputError
    from pipelines.config import ConfigError, load_config
    from pipelines.ray_runtime import ClusterError
    from pipelines.run import describe_dag, run_pipeline
    from pipelines.store import OutputError

    overrides = {"ray": {"address": args.ray_address}} if args.ray_address else None
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        raise CliError(str(e)) from None
    if args.dry_run:
        from pipelines.params import describe_filters

        print(describe_dag(cfg))
        print(describe_filters(cfg))
        return EXIT_OK
    try:
        record = run_pipeline(args.input, args.output, cfg)
    except (InputError, OutputError, ClusterError) as e:
        raise CliError(str(e)) from None
    if record.status == "succeeded":
        _print_summary(record)
    return EXIT_OK


def _print_summary(record) -> None:
    c = record.counts
    print(f"run {record.run_id}: {c['inputs']} input files → {c['videos']} videos, {c['clips']} clips, "
          f"{c['curated']} curated ({c['hours_curated'] * 60:.1f} of {c['hours_in'] * 60:.1f} min), "
          f"{c['errors']} error rows ({c['inputs_with_errors']} files)")
    if c["inputs"] == 0:
        print("the input holds no video files (extensions: see input.extensions in the config)")
    if c.get("drop_reasons"):
        # flagged counts (the dashboard's COUNTING_RULE): a clip with several reasons counts under each
        print("clips flagged by reason: " + ", ".join(f"{k}={v}" for k, v in c["drop_reasons"].items()))
    for line in record.not_configured:
        print(f"not configured: {line}")
    print(f"output: {record.output_uri}  (run record: runs/{record.run_id}.json)")


def _cmd_sample_data(args) -> int:
    if args.size == "large":
        from curation.defect_corpus import DEFAULT_COUNT, write_defect_corpus

        try:
            truth = write_defect_corpus(args.out, count=args.count or DEFAULT_COUNT, seed=args.seed)
        except ValueError as e:
            raise CliError(str(e)) from None
        rates = ", ".join(f"{k}={v}" for k, v in truth["kind_counts"].items())
        print(f"wrote {len(truth['videos'])} defect-labelled videos and ground_truth.json to {args.out} ({rates})")
        return EXIT_OK
    if args.count is not None:
        raise CliError("--count applies to --size large only")
    from curation.sample_data import write_sample_data

    truth = write_sample_data(args.out, seed=args.seed)
    print(f"wrote {len(truth['videos'])} demo videos and ground_truth.json to {args.out}")
    return EXIT_OK


def _cmd_evaluate(args) -> int:
    import json

    from curation.evaluate import EVALUATION_NAME, evaluate_run, format_evaluation
    from pipelines.review_cli import require_run, storage_options

    options = storage_options(args)
    require_run(args.out, options)
    mapping = {}
    for item in args.reason or []:
        defect, sep, reason = item.partition("=")
        if not sep or not defect:
            raise CliError(f"--reason wants DEFECT=REASON (REASON may be empty for none), got {item!r}")
        mapping[defect] = reason or None
    if not args.truth and not args.labels:
        raise CliError("evaluate needs --truth FILE, --labels FILE or both")
    try:
        result = evaluate_run(args.out, args.truth, mapping, options, labels_uri=args.labels)
    except FileNotFoundError as e:
        raise CliError(f"truth or labels file not found: {e}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        given = " / ".join(x for x in (args.truth, args.labels) if x)
        raise CliError(f"{given} is not a ground-truth file (vidcurate sample-data writes one) or a keep/drop "
                       f"labels file (curation/evaluate.py describes it): {e}") from None
    print(format_evaluation(result))
    print(f"wrote {args.out.rstrip('/')}/{EVALUATION_NAME}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vidcurate", description="Curate raw video into scored, reviewable training manifests.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    r = sub.add_parser("run", help="split, score, filter and curate every video under INPUT_URI",
                       description="Run the curation pipeline on Ray. Resumable: rerunning continues where it stopped "
                                   "and processes only new inputs.")
    r.add_argument("input", metavar="INPUT_URI", help="folder or file: local path, file://, memory://, s3://...")
    r.add_argument("output", metavar="OUTPUT_URI", help="run folder to write tables into")
    r.add_argument("--config", metavar="FILE", help="YAML merged over pipelines/configs/default.yaml")
    r.add_argument("--ray-address", metavar="ADDR",
                   help="join an existing Ray cluster: host:6379 of a `ray start --head` node, or 'auto' (RAY_ADDRESS, "
                        "else the newest `ray start` cluster on this machine); default: start a local one")
    r.add_argument("--dry-run", action="store_true", help="print the stage DAG and exit")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("sample-data", help="write the deterministic demo videos and their ground truth")
    s.add_argument("out", metavar="OUT", help="folder to write into")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", choices=("small", "large"), default="small",
                   help="small: the 13-file demo set; large: a defect-labelled corpus of a few hundred clips")
    s.add_argument("--count", type=int, metavar="N", help="--size large: base videos (default 240, plus copies)")
    s.set_defaults(func=_cmd_sample_data)

    e = sub.add_parser("evaluate", help="precision and recall of a run's drop reasons, cuts and duplicates against "
                                        "ground truth or keep/drop labels",
                       description="Score run folder OUT against a ground-truth file (vidcurate sample-data writes one): "
                                   "per defect the precision and recall of its drop reason, shot boundaries (±2 frames) "
                                   "and duplicate pairs; and/or against a person's keep/drop labels (per file, or per "
                                   "span in seconds, e.g. ../shared/data/real/LABELS.json): clean-clip retention and "
                                   "each drop reason's precision and recall. Writes OUT/evaluation.json.")
    e.add_argument("out", metavar="OUT", help="a run folder written by `vidcurate run`")
    e.add_argument("--truth", metavar="FILE", help="ground_truth.json of the input (a labels file here is read as labels)")
    e.add_argument("--labels", metavar="FILE",
                   help='keep/drop labels: {"FILE": {"keep": true|false|"every shot", "spans": [{"start_s", "end_s", '
                        '"keep"}]}} (format: curation/evaluate.py)')
    e.add_argument("--reason", action="append", metavar="DEFECT=REASON",
                   help="which drop reason catches a defect (repeatable), e.g. letterbox=letterboxed")
    e.add_argument("--config", metavar="FILE", help="YAML whose input/output storage_options reach OUT")
    e.add_argument("--storage-option", action="append", metavar="KEY=VALUE", help="fsspec option for OUT (repeatable)")
    e.set_defaults(func=_cmd_evaluate)

    for module in VERB_MODULES:  # a module that cannot be imported is a broken install: fail loudly
        importlib.import_module(module).add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or EXIT_OK)
    except CliError as e:
        print(f"vidcurate: error: {one_line(e)}", file=sys.stderr)
        return e.code
    except SystemExit as e:
        if not isinstance(e.code, str):  # --help (0), or an exit code a verb chose
            raise
        print(f"vidcurate: error: {one_line(e.code)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM during a run (pipelines.run_records.RunInterrupted)
        print("vidcurate: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    from pipelines.cli import main as _main  # this module under its own name: one CliError class, not __main__'s

    sys.exit(_main())
