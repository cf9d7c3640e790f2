"""The stage registry: every built-in stage declared once, and the order a DAG of stages runs in.

A stage's spec says what it reads and writes and whether it is a table stage (it works
on the partitioned clips table of pipelines/table_shards.py once the scan and the model
stages are done). The config validates stage names against it, the executor
(pipelines/run.py) runs `runner` and reads nothing else about a stage. `WRITE`, the
final tables, is the last stage of every run and is not named in configs.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter


@dataclass(frozen=True)
class StageSpec:
    name: str
    runner: str  # "module:function" taking (run, stage name)
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    table: bool = False  # runs on the clips table once the scan and the model stages are done

    def run_function(self) -> Callable:
        module, _, func = self.runner.partition(":")
        return getattr(importlib.import_module(module), func)


STAGES: dict[str, StageSpec] = {s.name: s for s in (
    StageSpec("probe_split_score", "pipelines.run:_scan", ("input files",),
              ("scan parts: videos, clips, keyframes, samples, errors",)),
    StageSpec("embed", "pipelines.run:_embed", ("keyframes",), ("embedding", "aesthetic")),
    StageSpec("text", "pipelines.run:_text", ("keyframes",), ("text_area_frac",)),
    StageSpec("safety", "pipelines.run:_safety", ("keyframes",), ("nsfw_score",)),
    StageSpec("filter", "pipelines.run:_filter", ("clips",), ("drop_reasons",), table=True),
    StageSpec("dedup", "pipelines.run:_dedup", ("clips", "samples", "keyframes"), ("dup_*", "dup_segments"),
              table=True),
    StageSpec("caption", "pipelines.run:_caption", ("kept clips", "keyframes"), ("caption", "caption_*"), table=True),
    StageSpec("balance", "pipelines.run:_balance", ("clips",), ("sample_weight", "drop_reasons"), table=True),
    StageSpec("curate", "pipelines.run:_curate", ("clips",), ("curated",), table=True),
)}
WRITE = StageSpec("write", "pipelines.run:_write_tables", ("clips", "keyframes", "errors"),
                  ("videos", "clips", "curated", "errors", "keyframes", "dup_segments"), table=True)
CUSTOM = StageSpec("custom", "pipelines.run:_custom_stage", ("clips",), ("clips",), table=True)  # a stage with an entrypoint


def topological_order(depends_on: dict[str, Iterable[str]]) -> list[str]:
    """Stage names, each after every stage it depends on; stages that are ready together keep the given order.
    A cycle raises ValueError naming it."""
    rank = {n: i for i, n in enumerate(depends_on)}
    sorter = TopologicalSorter({n: tuple(d) for n, d in depends_on.items()})
    try:
        sorter.prepare()
    except CycleError as e:
        raise ValueError(f"stages form a cycle: {' -> '.join(reversed(e.args[1]))}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda n: rank.get(n, len(rank)))
        order += ready
        sorter.done(*ready)
    return order
