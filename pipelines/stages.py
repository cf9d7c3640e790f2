"""The stage registry: every built-in stage declared once, and the order a DAG of stages runs in.

A stage's spec says what it reads and writes, whether it is a table stage (it works on
the clips table after the scan and model stages) and whether the partitioned path
(pipelines/table_shards.py) runs it. The config validates stage names against it, the
executor (pipelines/run.py) runs `runner` and reads nothing else about a stage.
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
    sharded: bool = False  # the partitioned path runs it (over shard files, no per-clip state on the driver)

    def run_function(self) -> Callable:
        module, _, func = self.runner.partition(":")
        return getattr(importlib.import_module(module), func)


STAGES: dict[str, StageSpec] = {s.name: s for s in (
    StageSpec("probe_split_score", "pipelines.run:_scan", ("input files",),
              ("scan parts: videos, clips, keyframes, samples, errors",)),
    StageSpec("embed", "pipelines.run:_embed", ("keyframes",), ("embedding", "aesthetic")),
    StageSpec("text", "pipelines.run:_text", ("keyframes",), ("text_area_frac",)),
    StageSpec("filter", "pipelines.run:_filter", ("clips",), ("drop_reasons",), table=True, sharded=True),
    StageSpec("dedup", "pipelines.run:_dedup", ("clips", "samples", "keyframes"), ("dup_*", "dup_segments"),
              table=True, sharded=True),
    StageSpec("caption", "pipelines.run:_caption", ("kept clips", "keyframes"), ("caption", "caption_*")),
    StageSpec("balance", "pipelines.run:_balance", ("clips",), ("sample_weight", "drop_reasons"), table=True,
              sharded=True),
    StageSpec("curate", "pipelines.run:_curate", ("clips",), ("curated",), table=True, sharded=True),
)}
SHARDED_ORDER = tuple(n for n, s in STAGES.items() if s.sharded)  # the order the partitioned path runs them in


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
