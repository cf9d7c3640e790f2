"""The stage registry: each built-in stage declared once, its runner resolvable, and the DAG's order."""
import pytest

from pipelines.config import BUILTIN_STAGES, ConfigError, load_config, stage_order
from pipelines.run import spec_of
from pipelines.stages import CUSTOM, STAGES, WRITE, topological_order


def test_every_stage_is_declared_once_and_its_runner_resolves():
    assert BUILTIN_STAGES == tuple(STAGES)
    for name, spec in [*STAGES.items(), (WRITE.name, WRITE), (CUSTOM.name, CUSTOM)]:
        assert callable(spec.run_function()), name
        assert spec.reads and spec.writes, name
    assert [n for n, s in STAGES.items() if s.table] == ["filter", "dedup", "caption", "balance", "curate"]
    assert WRITE.name not in BUILTIN_STAGES  # the final tables: always the last stage, never named in a config


def test_order_follows_dependencies_and_keeps_the_given_order_among_ready_stages():
    assert topological_order({"x": [], "a": ["x"], "b": ["x"], "c": ["b", "a"]}) == ["x", "a", "b", "c"]
    assert topological_order({"x": [], "b": ["x"], "a": ["x"]}) == ["x", "b", "a"]
    with pytest.raises(ValueError, match="stages form a cycle: (a -> b -> a|b -> a -> b)"):
        topological_order({"a": ["b"], "b": ["a"]})


def test_a_cycle_in_the_config_fails_with_the_cycle_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("stages:\n  filter: {depends_on: [dedup]}\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(p)


def test_a_stage_with_an_entrypoint_is_a_table_stage_anywhere_after_the_scan(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("stages:\n  mine: {entrypoint: 'os:getcwd', depends_on: [probe_split_score]}\n  filter: {depends_on: [mine]}\n")
    cfg = load_config(p)
    order = stage_order(cfg)
    assert order.index("probe_split_score") < order.index("mine") < order.index("filter") < order.index("dedup") < order.index("curate")
    assert spec_of(cfg, "mine") is CUSTOM and spec_of(cfg, "dedup") is STAGES["dedup"]
