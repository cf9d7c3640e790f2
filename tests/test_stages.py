"""The stage registry: each built-in stage declared once, its runner resolvable, and the DAG's order."""
import pytest

from pipelines.config import BUILTIN_STAGES, ConfigError, load_config, sharded_blocker, stage_order
from pipelines.stages import SHARDED_ORDER, STAGES, topological_order


def test_every_stage_is_declared_once_and_its_runner_resolves():
    assert BUILTIN_STAGES == tuple(STAGES)
    for name, spec in STAGES.items():
        assert callable(spec.run_function()), name
        assert spec.reads and spec.writes, name
    assert SHARDED_ORDER == ("filter", "dedup", "balance", "curate")
    assert all(STAGES[n].table for n in SHARDED_ORDER)


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


def test_default_dag_runs_partitioned():
    cfg = load_config()
    order = stage_order(cfg)
    assert order.index("probe_split_score") < order.index("filter") < order.index("dedup") < order.index("curate")
    assert sharded_blocker(cfg) is None
