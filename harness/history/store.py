"""The history store: one table of KPI rows (records.COLUMNS) in DuckDB (a file, nothing to start)
or PostgreSQL (a ``postgresql://`` URL, for a team). The same SQL serves both; only the
parameter marker and the bulk insert differ."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from harness.history.records import COLUMNS, normalize

# Relative: under ./reports of the current directory, beside the run directories.
DEFAULT_HISTORY = Path("reports") / "history.duckdb"
TABLE = "kpi_history"
_TYPES = {"level": "INTEGER", "value": "DOUBLE PRECISION", "repeats": "INTEGER"}
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    + ", ".join(f"{c} {_TYPES.get(c, 'TEXT')} NOT NULL" for c in COLUMNS)
    + ")"
)
_INDEX = f"CREATE INDEX IF NOT EXISTS {TABLE}_night ON {TABLE} (night)"


class HistoryError(Exception):
    """The store cannot be opened or a file does not fit the history's format."""


def is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def display(location: str) -> str:
    """``location`` fit to print: a URL's password is replaced by ***."""
    parts = urlsplit(location)
    if not is_postgres(location) or parts.password is None:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class HistoryStore:
    """A connection to the history table: ``add`` replaces a run's rows, ``frame`` reads."""

    def __init__(self, location: str | Path = DEFAULT_HISTORY) -> None:
        self.location = str(location)
        self.postgres = is_postgres(self.location)
        try:
            if self.postgres:
                import psycopg

                self._con: Any = psycopg.connect(self.location, autocommit=True)
            else:
                import duckdb

                Path(self.location).parent.mkdir(parents=True, exist_ok=True)
                self._con = duckdb.connect(self.location)
        except Exception as exc:
            raise HistoryError(f"cannot open history {display(self.location)}: {exc}") from exc
        self._execute(_DDL)
        self._execute(_INDEX)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._con.execute(self._sql(sql), params)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.postgres:
            with self._con.transaction():
                yield
        else:
            self._con.begin()
            try:
                yield
            except BaseException:
                self._con.rollback()
                raise
            self._con.commit()

    def add(self, rows: pd.DataFrame) -> int:
        """Store ``rows``; rows of a run already stored replace it (adding twice is harmless)."""
        rows = normalize(rows)
        records = [tuple(r) for r in rows[list(COLUMNS)].itertuples(index=False, name=None)]
        records = [(*r[:7], int(r[7]), r[8], float(r[9]), int(r[10]), *r[11:]) for r in records]
        placeholders = ", ".join("?" for _ in COLUMNS)
        insert = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        with self._transaction():
            for run_id in sorted(set(rows["run_id"])):
                self._execute(f"DELETE FROM {TABLE} WHERE run_id = ?", (run_id,))
            if self.postgres:
                with self._con.cursor() as cur:
                    cur.executemany(self._sql(insert), records)
            elif records:
                self._con.register("incoming", rows[list(COLUMNS)])
                self._con.execute(f"INSERT INTO {TABLE} SELECT * FROM incoming")
                self._con.unregister("incoming")
        return len(records)

    def frame(self, since: str | None = None) -> pd.DataFrame:
        """Every row (from night ``since`` on), oldest night first."""
        where, params = ("WHERE night >= ?", (since,)) if since else ("", ())
        cur = self._execute(
            f"SELECT {', '.join(COLUMNS)} FROM {TABLE} {where} ORDER BY night, run_id, scenario, "
            "step, target, operation, level, kpi",
            params,
        )
        return normalize(pd.DataFrame(cur.fetchall(), columns=list(COLUMNS)))

    def runs(self) -> pd.DataFrame:
        """One line per stored run: night, scenario, builds and how many KPI rows."""
        cur = self._execute(
            f"SELECT night, run_id, scenario, MIN(facade_build), MAX(facade_build), "
            f"MIN(harness_revision), COUNT(*) FROM {TABLE} "
            "GROUP BY night, run_id, scenario ORDER BY night, run_id"
        )
        columns = ["night", "run_id", "scenario", "build_min", "build_max", "harness", "rows"]
        return pd.DataFrame(cur.fetchall(), columns=columns)
