"""The Spark tests: a local Spark session per module, and a clear skip where Java is absent."""

from __future__ import annotations

import shutil

import pytest

#: Why every test here is skipped on a machine without Java (CI has it and runs them).
NO_JAVA = "Spark needs Java 17+ on PATH (`java` not found): the Spark tests are skipped"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("java"):
        return
    skip = pytest.mark.skip(reason=NO_JAVA)
    for item in items:
        if item.path.parent.name == "spark":
            item.add_marker(skip)


#: Partitions of a shuffle in the tests' local sessions: Spark's 200 would cost more than the
#: shops' few thousand rows (README, LTV_SPARK_SHUFFLE_PARTITIONS).
SHUFFLE_PARTITIONS = "2"
#: The driver JVM's options in the tests: a JIT that compiles at once (C1 only) and the serial
#: collector suit a session of short queries (README, LTV_SPARK_JAVA_OPTIONS).
JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


@pytest.fixture(autouse=True)
def quick_local_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt's Spark session and the Python assets' read these from the profile."""
    monkeypatch.setenv("LTV_SPARK_SHUFFLE_PARTITIONS", SHUFFLE_PARTITIONS)
    monkeypatch.setenv("LTV_SPARK_JAVA_OPTIONS", JAVA_OPTIONS)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """A local Spark session (UTC, no UI, scratch in a temp folder), its JVM shut down after
    the module so a dbt-spark subprocess can open the metastore later."""
    import os

    from pyspark.sql import SparkSession

    from ltv_pipeline.warehouse.spark import SparkWarehouse

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    scratch = tmp_path_factory.mktemp("spark")
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", SHUFFLE_PARTITIONS)
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"{JAVA_OPTIONS} -Dderby.system.home={scratch}")
        .getOrCreate()
    )
    yield session
    SparkWarehouse().release()
