"""Run SQL against a run's dashboard.duckdb and format the result for the terminal."""
from curation.dashboard.database import connect
from curation.dashboard.text_table import format_table

MAX_ROWS = 1000


def query(out_dir: str, sql: str, max_rows: int = MAX_ROWS) -> str:
    """Result of `sql` on OUT/dashboard.duckdb (read-only) as a text table."""
    con = connect(out_dir, read_only=True)
    try:
        cur = con.execute(sql)
        if cur.description is None:
            return "OK"
        headers = [d[0] for d in cur.description]
        rows = cur.fetchmany(max_rows + 1)
    finally:
        con.close()
    text = format_table(headers, rows[:max_rows])
    shown = min(len(rows), max_rows)
    more = f" (first {max_rows} shown; add LIMIT/OFFSET for more)" if len(rows) > max_rows else ""
    return f"{text}\n({shown} row{'s' if shown != 1 else ''}){more}"
