"""dbt's sources as Spark tables, copied from a DuckDB warehouse the pipeline built.

The pipeline writes the raw tables and ``marts.customer_predictions`` in Python into DuckDB
only. To build the dbt models on Spark (``LTV_WAREHOUSE=spark``), this exports every table the
dbt sources name (``dbt_project/models/**/_*__sources.yml``) to Parquet with DuckDB's ``COPY``
and registers each as a Parquet table in the Spark database of the same name, in the warehouse
and metastore that dbt's ``spark`` profile uses (its ``server_side_parameters``, rendered here the
way dbt renders them). Column types are DuckDB's, mapped one to one (DECIMAL keeps its precision
and scale, TIMESTAMP stays UTC with the session time zone UTC).

    SPARK_LOCAL_IP=127.0.0.1 DBT_PROJECT_DIR=$PWD/dbt_project \\
        .venv/bin/python tests/spark_sources.py --duckdb /path/warehouse.duckdb

Only one Spark session may use the Derby metastore at a time: do not run this while dbt runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

import duckdb
import jinja2
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"

_SIMPLE_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "tinyint",
    "SMALLINT": "smallint",
    "INTEGER": "int",
    "BIGINT": "bigint",
    "HUGEINT": "decimal(38,0)",
    "FLOAT": "float",
    "DOUBLE": "double",
    "VARCHAR": "string",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
}


def spark_type(duckdb_type: str) -> str:
    """The Spark SQL type of a DuckDB column type; an unknown one is an error, not a guess."""
    decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", duckdb_type)
    if decimal:
        return f"decimal({decimal[1]},{decimal[2]})"
    if duckdb_type not in _SIMPLE_TYPES:
        raise ValueError(f"no Spark type for DuckDB type {duckdb_type}")
    return _SIMPLE_TYPES[duckdb_type]


def source_tables(project_dir: Path = PROJECT_DIR) -> list[tuple[str, str]]:
    """(schema, table) of every dbt source table."""
    tables = []
    for path in sorted(project_dir.glob("models/**/_*__sources.yml")):
        for source in yaml.safe_load(path.read_text())["sources"]:
            schema = source.get("schema", source["name"])
            tables += [(schema, table["name"]) for table in source["tables"]]
    return tables


def spark_conf(project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """The ``server_side_parameters`` of the profile's spark output, rendered as dbt does."""
    os.environ.setdefault("DBT_PROJECT_DIR", str(project_dir))
    profile = yaml.safe_load((project_dir / "profiles.yml").read_text())
    params = profile["ltv"]["outputs"]["spark"]["server_side_parameters"]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)

    def env_var(name: str, default: str | None = None) -> str:
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise KeyError(f"environment variable {name} is not set")
        return default

    return {
        key: env.from_string(str(value)).render(env_var=env_var) for key, value in params.items()
    }


def spark_session():
    """A local Spark session on dbt's warehouse and metastore (Hive support, as dbt-spark)."""
    from pyspark.sql import SparkSession

    if os.environ.get("SPARK_LOCAL_IP") is None:
        raise SystemExit("set SPARK_LOCAL_IP=127.0.0.1")
    builder = SparkSession.builder.master("local[*]").enableHiveSupport()
    for key, value in spark_conf().items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def export_parquet(duckdb_path: Path, out_dir: Path) -> dict[tuple[str, str], list]:
    """COPY every source table to ``out_dir/<schema>.<table>.parquet``; returns the columns."""
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = {}
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        for schema, table in source_tables():
            described = con.execute(f'describe "{schema}"."{table}"').fetchall()
            columns[(schema, table)] = [(row[0], spark_type(row[1])) for row in described]
            target = out_dir / f"{schema}.{table}.parquet"
            con.execute(f'copy "{schema}"."{table}" to \'{target}\' (format parquet)')
    return columns


def register(spark, parquet_dir: Path, columns: dict[tuple[str, str], list]) -> None:
    """(Re)create each source as a managed Parquet table with the exported rows and types."""
    for (schema, table), cols in columns.items():
        spark.sql(f"create database if not exists `{schema}`")
        frame = spark.read.parquet(str(parquet_dir / f"{schema}.{table}.parquet"))
        frame = frame.selectExpr(*(f"cast(`{name}` as {kind}) as `{name}`" for name, kind in cols))
        spark.sql(f"drop table if exists `{schema}`.`{table}`")
        location = Path(spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:"))
        # a dropped managed table may leave its folder behind, which saveAsTable refuses
        shutil.rmtree(location / f"{schema}.db" / table, ignore_errors=True)
        frame.write.format("parquet").saveAsTable(f"`{schema}`.`{table}`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duckdb", type=Path, required=True, help="the pipeline's warehouse")
    parser.add_argument(
        "--parquet-dir",
        type=Path,
        help="where the Parquet copies go (default: data/spark/sources)",
    )
    args = parser.parse_args(argv)
    parquet_dir = (args.parquet_dir or PROJECT_DIR.parent / "data" / "spark" / "sources").resolve()
    columns = export_parquet(args.duckdb.resolve(), parquet_dir)
    spark = spark_session()
    try:
        register(spark, parquet_dir, columns)
        for schema, table in columns:
            count = spark.table(f"`{schema}`.`{table}`").count()
            print(f"{schema}.{table}: {count} rows")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
