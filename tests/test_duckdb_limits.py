"""The dashboard build and `vidcurate query` bound DuckDB: a memory limit and a spill folder, both configurable."""
import duckdb
import pytest

from _dashboard_run import make_run
from curation.dashboard import build_dashboard
from curation.dashboard.database import duckdb_limits
from pipelines.cli import main

SETTINGS = "SELECT current_setting('memory_limit'), current_setting('temp_directory')"


@pytest.fixture(scope="module")
def run(tmp_path_factory, test_videos):
    root = tmp_path_factory.mktemp("limits")
    return make_run(root / "OUT", root / "inputs", test_videos, "a")


def test_every_connection_of_the_build_is_bounded(run, tmp_path, monkeypatch):
    seen, connect = [], duckdb.connect

    def spy(*args, **kwargs):
        con = connect(*args, **kwargs)
        if args:  # a connection to the database file (not the thumbnails' lookup of a few hundred keyframes)
            seen.append(con.execute(SETTINGS).fetchall()[0])
        return con

    monkeypatch.setattr(duckdb, "connect", spy)
    build_dashboard(str(run), limits=duckdb_limits("256MiB", str(tmp_path / "spill")))
    assert len(seen) == 2  # the database build and the HTML report
    assert set(seen) == {("256.0 MiB", str(tmp_path / "spill"))}


def test_default_is_a_share_of_ram_under_the_system_temp(run, monkeypatch):
    import os
    import tempfile

    limits = duckdb_limits()
    ram_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    assert limits["memory_limit"].endswith("MiB") and abs(int(limits["memory_limit"][:-3]) - ram_mib / 4) <= 1
    assert limits["temp_directory"].startswith(tempfile.gettempdir())
    assert duckdb_limits("50%")["memory_limit"] == f"{int(0.5 * ram_mib * 2**20) >> 20}MiB"
    for bad in ("lots", "0%", "150%"):
        with pytest.raises(ValueError, match="memory limit"):
            duckdb_limits(bad)


def test_query_runs_bounded_and_the_bound_cannot_be_lifted(run, tmp_path, capsys):
    build_dashboard(str(run))
    spill = tmp_path / "spill"
    sql = f"SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') = '{spill}' AS spill_here"
    assert main(["query", str(run), sql, "--memory-limit", "256MiB", "--temp-dir", str(spill)]) == 0
    assert capsys.readouterr().out.splitlines()[2].split() == ["256.0", "MiB", "True"]
    assert main(["query", str(run), "SET memory_limit = '100GB'"]) == 2  # the sandbox is locked after the limits
    assert "query refused" in capsys.readouterr().err
    assert main(["query", str(run), "select 1", "--memory-limit", "lots"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("vidcurate: error: --memory-limit")
