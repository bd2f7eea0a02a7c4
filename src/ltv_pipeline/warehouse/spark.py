"""The Spark warehouse (``LTV_WAREHOUSE=spark``): what Python assets read and write through.

pyspark is an optional extra (``pip install -e '.[spark]'``), imported only when a Spark
session is opened. The session's configuration is the ``server_side_parameters`` of the dbt
profile's ``spark`` output, rendered the way dbt renders it: dbt and the Python assets use one
warehouse folder and one metastore, defined in one place.

A local session keeps Spark's Hive metastore in an embedded Derby database, which one JVM at a
time may open. dbt runs as a subprocess with its own session, so :meth:`SparkWarehouse.release`
(called before every dbt step) shuts this process's JVM down; the next Python asset starts it
again. Against a cluster the metastore is a service and this costs only the restart.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pandas as pd
import pyarrow as pa
import yaml
from pydantic import Field

from ltv_pipeline import publish, settings
from ltv_pipeline.ingest import InputMapping, LoadReport
from ltv_pipeline.ingest.spark import load_raw_spark
from ltv_pipeline.warehouse.base import Warehouse

PROFILE_TARGET = "spark"


def spark_conf(project_dir: Path = settings.DBT_PROJECT_DIR) -> dict[str, str]:
    """The dbt profile's Spark ``server_side_parameters``, with ``env_var`` rendered as dbt does.

    Raises
    ------
    KeyError
        An ``env_var`` without a default that is not set.
    """
    profile = yaml.safe_load((project_dir / "profiles.yml").read_text())
    params = profile["ltv"]["outputs"][PROFILE_TARGET].get("server_side_parameters", {})
    env = {"DBT_PROJECT_DIR": str(project_dir), **os.environ}

    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        if default is None:
            raise KeyError(f"environment variable {name} is not set (dbt profile {PROFILE_TARGET})")
        return default

    render = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return {
        key: render.from_string(str(value)).render(env_var=env_var) for key, value in params.items()
    }


def _frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow result as DuckDB's ``.df()`` gives it: decimals as floats, dates as datetimes."""
    columns = [
        column.cast(pa.float64()) if pa.types.is_decimal(column.type) else column
        for column in table.columns
    ]
    return pa.table(columns, names=table.column_names).to_pandas(date_as_object=False)


class SparkSQLSession:
    """:class:`ltv_pipeline.warehouse.base.WarehouseSession` on a Spark session."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def frame(self, sql: str) -> pd.DataFrame:
        return _frame(self.spark.sql(sql).toArrow())

    def row(self, sql: str) -> tuple[Any, ...]:
        first = self.spark.sql(sql).first()
        return tuple(first) if first is not None else ()

    def replace_table(self, table: str, frame: pd.DataFrame, order_by: str) -> int:
        schema = table.split(".")[0]
        self.spark.sql(f"create database if not exists {schema}")
        data = self.spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))
        data.createOrReplaceTempView("_frame")
        try:
            sorted_data = self.spark.sql(f"select * from _frame order by {order_by}")
            sorted_data.write.mode("overwrite").format("parquet").saveAsTable(table)
        finally:
            self.spark.catalog.dropTempView("_frame")
        return len(frame)

    def batches(self, sql: str, rows: int) -> Iterator[pd.DataFrame]:
        # one batch: the driver collects results whole (toArrow) on this path anyway
        yield self.frame(sql)

    def replace_table_batches(
        self, table: str, batches: Iterable[pd.DataFrame], order_by: str
    ) -> int:
        return self.replace_table(table, pd.concat(list(batches), ignore_index=True), order_by)

    def replace_table_query(self, table: str, sql: str, inputs: Mapping[str, pd.DataFrame]) -> int:
        schema = table.split(".")[0]
        self.spark.sql(f"create database if not exists {schema}")
        for name, frame in inputs.items():
            data = self.spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))
            data.createOrReplaceTempView(name)
        try:
            self.spark.sql(sql).write.mode("overwrite").format("parquet").saveAsTable(table)
        finally:
            for name in inputs:
                self.spark.catalog.dropTempView(name)
        return int(self.spark.table(table).count())


class SparkWarehouse(Warehouse):
    """Spark: a local session (``master``) or, through ``SPARK_REMOTE``, a cluster's."""

    master: str = Field(default="local[*]", description="Spark master of a local session.")
    conf: dict[str, str] = Field(
        default_factory=dict, description="Spark configuration (the dbt profile's)."
    )

    def _spark(self) -> Any:
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master(self.master).enableHiveSupport()
        for key, value in self.conf.items():
            builder = builder.config(key, value)
        # UTC whatever the profile says: the load rules read a timestamp without an offset in
        # the session time zone, which is otherwise the JVM's (the host's TZ)
        builder = builder.config("spark.sql.session.timeZone", "UTC")
        return builder.getOrCreate()

    @contextmanager
    def session(self) -> Iterator[SparkSQLSession]:
        yield SparkSQLSession(self._spark())

    def load_raw(
        self,
        raw_dir: Path,
        *,
        currency: str,
        log: Callable[[str], None],
        full_refresh: bool,
        mapping: InputMapping | None = None,
        max_quarantine_share: float = settings.DEFAULT_MAX_QUARANTINE_SHARE,
        earliest_date: dt.date = settings.DEFAULT_EARLIEST_DATE,
    ) -> LoadReport:
        # every Spark load reads every file (ingest_spark): full_refresh changes nothing
        return load_raw_spark(
            self._spark(),
            raw_dir,
            currency=currency,
            log=log,
            mapping=mapping,
            max_quarantine_share=max_quarantine_share,
            earliest_date=earliest_date,
        )

    def location(self) -> str:
        return self.conf.get("spark.sql.warehouse.dir", "spark-warehouse")

    def mart_tables(self, schema: str) -> list[str]:
        spark = self._spark()
        if not spark.catalog.databaseExists(schema):
            return []
        return sorted(t.name for t in spark.catalog.listTables(schema) if not t.isTemporary)

    def publish(
        self,
        schema: str,
        tables: list[str],
        out_dir: Path,
        *,
        run_id: str,
        as_of_date: str,
        keys: Mapping[str, Sequence[str]] | None = None,
    ) -> publish.Manifest:
        """The same snapshot as on DuckDB: each mart is collected to this process (Arrow) and
        written by :func:`publish.publish`. On a cluster, publish Parquet from Spark instead
        (README "When you outgrow one machine")."""
        spark = self._spark()
        with duckdb.connect() as con:
            con.execute(f"create schema {publish.quote(schema)}")
            for table in tables:
                data = spark.table(f"{schema}.{table}").toArrow()  # noqa: F841 - read by name
                con.execute(
                    f"create table {publish.quote(schema)}.{publish.quote(table)} "
                    "as select * from data"
                )
            return publish.publish(
                con, schema, tables, out_dir, run_id=run_id, as_of_date=as_of_date, keys=keys
            )

    def release(self) -> None:
        """Stop the session and this process's JVM, so dbt's session can open the metastore."""
        try:
            from pyspark import SparkContext
            from pyspark.sql import SparkSession
        except ImportError:
            return
        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
        gateway = SparkContext._gateway
        if gateway is None:
            return
        gateway.shutdown()
        process = getattr(gateway, "proc", None)
        if process is not None:
            if process.stdin:
                process.stdin.close()  # the JVM exits when its stdin closes
            process.wait(timeout=60)
        SparkContext._gateway = None
        SparkContext._jvm = None
