"""DuckDB connections as the library uses them: bounded memory, quiet, every core."""

from __future__ import annotations

import os
from typing import Any

#: Memory a query may use before DuckDB spills or fails (its default is 80 % of the machine).
MEMORY_LIMIT = "1GB"


def connect(memory_limit: str = MEMORY_LIMIT, *, ordered: bool = True) -> Any:
    """An in-memory DuckDB connection within ``memory_limit``, one thread per core, no progress bar.

    ``ordered=False`` lets results come in any order (less memory for scans whose order does not matter).
    """
    import duckdb

    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": max(1, os.cpu_count() or 1),
                                 "preserve_insertion_order": ordered})
    try:
        con.execute("SET enable_progress_bar=false")  # it draws on stdout, where --json output goes
    except duckdb.Error:  # in a Jupyter kernel DuckDB refuses to change it (already off there without ipywidgets)
        pass
    return con


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
