"""Nothing silently wrong (issue 16): input that used to load as something else is held or
fails, on real DuckDB.

- the host's time zone never changes what a timestamp means (each run is a subprocess with
  ``TZ`` set: DuckDB reads it when a connection opens);
- dates before ``LTV_EARLIEST_DATE`` are quarantined, date sentinels (epoch, infinity, now,
  ...) are unparseable, and a history longer than the marts' month sequences fails the build;
- money has at most two decimals and no exponent or underscore, ids are positive, channels
  are compared in Unicode NFC, ``LTV_DBT_THREADS`` is checked, and the warehouse file is
  readable by its owner only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import subprocess
import sys
import unicodedata
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ltv_pipeline import ingest, settings
from ltv_pipeline.defs.resources import build_resources
from ltv_pipeline.sample.generate import generate_shop
from ltv_pipeline.warehouse.duckdb import DuckDBWarehouse

TIME_ZONES = ("UTC", "America/New_York", "Asia/Kolkata")
LOAD_TIME = dt.datetime(2026, 7, 1, 12, 0)


def _load(con: duckdb.DuckDBPyConnection, raw: Path, **kwargs) -> ingest.LoadReport:
    """:func:`ingest.load_raw` at a fixed time that never fails for the quarantined share."""
    kwargs.setdefault("max_quarantine_share", 1.0)
    return ingest.load_raw(con, raw, load_time=LOAD_TIME, **kwargs)


def _write(raw: Path, customers: str, orders: str, spend: str) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "customers.csv").write_text(customers, encoding="utf-8")
    (raw / "orders.csv").write_text(orders, encoding="utf-8")
    (raw / "marketing_spend.csv").write_text(spend, encoding="utf-8")


CUSTOMER_HEADER = "customer_id,email,signup_date,acquisition_channel,country\n"
ORDER_HEADER = "order_id,customer_id,ordered_at,status,amount,cost,currency\n"
SPEND_HEADER = "date,channel,spend\n"


def _reasons(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], str]:
    return {
        (table, line): reason
        for table, line, reason in con.execute(
            "select source_table, source_line, reason from raw.quarantine"
        ).fetchall()
    }


def _offsetless_shop(raw: Path, seed: int) -> None:
    """A small generated shop whose order timestamps carry no offset (documented as UTC)."""
    generate_shop(raw, customers=300, seed=seed)
    orders = raw / "orders.csv"
    orders.write_text(orders.read_text().replace("Z,", ","))


# One subprocess per host time zone: load (through the pipeline's warehouse resource) and
# write every raw table, sorted, as JSON to the file named last.
LOAD_AND_DUMP = """
import json, sys
from pathlib import Path
from ltv_pipeline.warehouse.duckdb import DuckDBWarehouse
raw, path, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
warehouse = DuckDBWarehouse(path=path)
warehouse.load_raw(raw, currency="USD", log=lambda _: None, full_refresh=True)
with warehouse.connect() as con:
    out.write_text(json.dumps({
        t: [list(map(str, r)) for r in con.sql(f"select * from raw.{t} order by all").fetchall()]
        for t in ("customers", "orders", "marketing_spend", "quarantine")
    }))
"""


def _in_time_zone(zone: str, code: str, out: Path, *args: str, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh Python with ``TZ=zone``; the JSON it wrote to ``out`` (its
    last argument; stdout holds the run's logs)."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args, str(out)],
        env={**os.environ, **(env or {}), "TZ": zone, "PYTHONPATH": str(settings.REPO_ROOT)},
        cwd=settings.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_loader_reads_timestamps_in_utc_whatever_the_host_time_zone(tmp_path):
    _offsetless_shop(tmp_path / "raw", seed=16)
    dumps = {
        zone: _in_time_zone(
            zone,
            LOAD_AND_DUMP,
            tmp_path / f"{zone[-4:]}.json",
            str(tmp_path / "raw"),
            str(tmp_path / f"{zone[-4:]}.duckdb"),
        )
        for zone in TIME_ZONES
    }
    assert dumps["UTC"]["orders"], "the shop loaded no orders"
    # an offset-less 03:21:14 is 03:21:14 UTC, as documented
    first = (tmp_path / "raw" / "orders.csv").read_text().splitlines()[1].split(",")
    loaded = {row[0]: row[2] for row in dumps["UTC"]["orders"]}
    assert loaded[first[0]] == first[2].replace("T", " ")
    for zone in TIME_ZONES[1:]:
        for table, rows in dumps["UTC"].items():
            assert dumps[zone][table] == rows, f"{table} differs under TZ={zone}"


# The whole pipeline in a subprocess; writes, as JSON to the file named, the sha256 of every
# published Parquet file and of every table's rows in the published DuckDB file (whose own
# bytes hold more than its rows: block layout, free lists).
RUN_AND_HASH_SNAPSHOT = """
import duckdb, hashlib, json, os, sys
from pathlib import Path
from ltv_pipeline import publish
from tests.helpers import run_pipeline
result = run_pipeline()
assert result.success, [e.message for e in result.all_events if e.is_failure]
out = Path(os.environ["LTV_DATA_DIR"]) / "published"
manifest = publish.read_manifest(out)
hashes = {"as_of_date": manifest.as_of_date}
hashes.update({t.name + ".parquet": t.parquet_sha256 for t in manifest.tables})
with duckdb.connect(str(out / "marts.duckdb"), read_only=True) as con:
    for t in manifest.tables:
        rows = con.execute(f"select * from {t.name} order by all").fetchall()
        hashes[t.name + " rows"] = hashlib.sha256(repr(rows).encode()).hexdigest()
Path(sys.argv[1]).write_text(json.dumps(hashes))
"""


def test_the_published_bytes_are_the_same_whatever_the_host_time_zone(tmp_path):
    """One pipeline run per zone, so dbt's connections are covered too (Kolkata used to fail
    a signup test, New York moved as_of_date a day and changed 13 of 14 marts). One thread
    each, so that float sums add in one order and the bytes can be compared."""
    published = {}
    for zone in TIME_ZONES:
        data = tmp_path / zone.replace("/", "_")
        _offsetless_shop(data / "raw", seed=17)
        env = {
            settings.DATA_DIR_ENV: str(data),
            settings.DUCKDB_ENV: str(data / "warehouse.duckdb"),
            settings.WAREHOUSE_ENV: "duckdb",
            "LTV_DUCKDB_THREADS": "1",
            "LTV_DBT_THREADS": "1",
        }
        published[zone] = _in_time_zone(zone, RUN_AND_HASH_SNAPSHOT, data / "hashes.json", env=env)
    assert len(published["UTC"]) >= 25, sorted(published["UTC"])
    for zone in TIME_ZONES[1:]:
        differing = sorted(
            t for t, sha in published["UTC"].items() if published[zone].get(t) != sha
        )
        assert not differing, f"the snapshot differs under TZ={zone}: {differing}"


def test_dates_before_the_earliest_date_are_quarantined(tmp_path):
    _write(
        tmp_path / "raw",
        CUSTOMER_HEADER + "1,a@x.com,2025-01-01,email,US\n2,b@x.com,1900-01-01,email,US\n",
        ORDER_HEADER
        + "10,1,2025-01-02T10:00:00Z,completed,5,,USD\n"
        + "11,1,1900-01-01T00:00:00Z,completed,5,,USD\n"
        + "12,1,1999-12-31 23:59:59,completed,5,,USD\n",
        SPEND_HEADER + "2025-01-01,email,5\n1999-12-31,email,5\n",
    )
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, tmp_path / "raw")
        assert _reasons(con) == {
            ("customers", 3): "too_early_signup_date",
            ("orders", 3): "too_early_ordered_at",
            ("orders", 4): "too_early_ordered_at",
            ("marketing_spend", 3): "too_early_date",
        }
        # a changed earliest date is a changed rule: the same files are read again
        _load(con, tmp_path / "raw", earliest_date=dt.date(1900, 1, 1))
        # now readable, the two old orders are still before customer 1 signed up
        assert _reasons(con) == {
            ("orders", 3): "ordered_before_signup",
            ("orders", 4): "ordered_before_signup",
        }
        assert con.execute("select count(*) from raw.customers").fetchone() == (2,)
        assert con.execute("select count(*) from raw.marketing_spend").fetchone() == (2,)


def test_the_earliest_date_is_a_checked_setting(monkeypatch):
    monkeypatch.delenv(settings.EARLIEST_DATE_ENV, raising=False)
    assert settings.earliest_date() == dt.date(2000, 1, 1)
    monkeypatch.setenv(settings.EARLIEST_DATE_ENV, " 2015-06-01 ")
    assert settings.earliest_date() == dt.date(2015, 6, 1)
    raw_files = build_resources()["raw_files"]
    assert raw_files.earliest == dt.date(2015, 6, 1)
    for bad in ("2015-13-01", "01/06/2015", "1899-12-31", "yesterday"):
        monkeypatch.setenv(settings.EARLIEST_DATE_ENV, bad)
        with pytest.raises(ValueError, match=settings.EARLIEST_DATE_ENV):
            settings.check_environment()


SENTINELS = ("epoch", "infinity", "-infinity", "+infinity", "now", "today", "yesterday")
SENTINELS += ("tomorrow", "allballs", "Infinity", " EPOCH ")


def test_date_sentinel_words_are_unparseable(tmp_path):
    """The words DuckDB's date and timestamp casts (and Spark's) take for special values."""
    _write(
        tmp_path / "raw",
        CUSTOMER_HEADER
        + "1,a@x.com,2025-01-01,email,US\n"
        + "".join(f"{i},a@x.com,{w},email,US\n" for i, w in enumerate(SENTINELS, 2)),
        ORDER_HEADER
        + "9,1,2025-01-02T10:00:00Z,completed,5,,USD\n"
        + "".join(f"{i},1,{w},completed,5,,USD\n" for i, w in enumerate(SENTINELS, 10)),
        SPEND_HEADER + "".join(f"{w},email,5\n" for w in SENTINELS),
    )
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, tmp_path / "raw")
        reasons = _reasons(con)
    n = len(SENTINELS)
    assert reasons == {
        **{("customers", line): "unparseable_signup_date" for line in range(3, n + 3)},
        **{("orders", line): "unparseable_ordered_at" for line in range(3, n + 3)},
        **{("marketing_spend", line): "unparseable_date" for line in range(2, n + 2)},
    }


def test_a_history_longer_than_the_month_sequences_fails_the_build(workdir, monkeypatch):
    """An order in 1900, let in by LTV_EARLIEST_DATE, used to publish a churn_monthly of exactly
    1,000 months; now the dbt test on int_reporting_window fails the run."""
    from tests.helpers import failure_messages, run_pipeline

    monkeypatch.setenv("LTV_EARLIEST_DATE", "1900-01-01")
    raw = workdir / "raw"
    generate_shop(raw, customers=300, seed=18)
    with (raw / "customers.csv").open("a") as handle:
        handle.write("9001,old@x.com,1900-01-01,email,US\n")
    with (raw / "orders.csv").open("a") as handle:
        handle.write("900001,9001,1900-01-02T10:00:00Z,completed,10.00,5.00,USD\n")
    raw_keys = (dg.AssetKey(["raw", t]) for t in (*ingest.LOAD_ORDER, "quarantine"))
    staging = dg.AssetKey(["staging", "stg_shop__orders"])
    window = dg.AssetKey(["intermediate", "int_reporting_window"])
    result = run_pipeline(dg.AssetSelection.keys(*raw_keys, staging, window))
    assert not result.success, "a 1,518-month history was built without a word"
    message = failure_messages(result)
    assert "Failure in test int_reporting_window_history_fits_month_sequences" in message


def test_money_with_more_decimals_an_exponent_or_underscores_is_held(tmp_path):
    amounts = ("12.345", "1e-3", "1_000", "1E2", "10.500", "10.5", ".25", "-0.001", "7")
    _write(
        tmp_path / "raw",
        CUSTOMER_HEADER + "1,a@x.com,2025-01-01,email,US\n",
        ORDER_HEADER
        + "".join(
            f"{i},1,2025-01-02T10:00:00Z,completed,{a},,USD\n" for i, a in enumerate(amounts, 10)
        )
        + "30,1,2025-01-02T10:00:00Z,completed,5,2.001,USD\n",
        SPEND_HEADER + "2025-01-01,email,5.125\n2025-01-02,email,5e1\n2025-01-03,email,5.10\n",
    )
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, tmp_path / "raw")
        reasons = _reasons(con)
        loaded = dict(con.execute("select order_id, amount::varchar from raw.orders").fetchall())
        spend = con.execute("select spend::varchar from raw.marketing_spend").fetchall()
    assert reasons == {
        ("orders", 2): "too_precise_amount",
        ("orders", 3): "non_numeric_amount",
        ("orders", 4): "non_numeric_amount",
        ("orders", 5): "non_numeric_amount",
        ("orders", 9): "too_precise_amount",
        ("orders", 11): "too_precise_cost",
        ("marketing_spend", 2): "too_precise_spend",
        ("marketing_spend", 3): "non_numeric_spend",
    }
    assert loaded == {14: "10.50", 15: "10.50", 16: "0.25", 18: "7.00"}
    assert spend == [("5.10",)]


def test_ids_must_be_positive(tmp_path):
    _write(
        tmp_path / "raw",
        CUSTOMER_HEADER
        + "1,a@x.com,2025-01-01,email,US\n-42,b@x.com,2025-01-01,email,US\n"
        + "0,c@x.com,2025-01-01,email,US\n+7,d@x.com,2025-01-01,email,US\n",
        ORDER_HEADER
        + "10,1,2025-01-02T10:00:00Z,completed,5,,USD\n"
        + "-11,1,2025-01-02T10:00:00Z,completed,5,,USD\n"
        + "12,-1,2025-01-02T10:00:00Z,completed,5,,USD\n"
        + "007,7,2025-01-02T10:00:00Z,completed,5,,USD\n",
        SPEND_HEADER + "2025-01-01,email,5\n",
    )
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, tmp_path / "raw")
        assert _reasons(con) == {
            ("customers", 3): "invalid_customer_id",
            ("customers", 4): "invalid_customer_id",
            ("orders", 3): "invalid_order_id",
            ("orders", 4): "invalid_customer_id",
        }
        assert con.execute("select order_id from raw.orders order by 1").fetchall() == [
            (7,),
            (10,),
        ]


def test_channels_are_one_key_whatever_their_unicode_form(tmp_path):
    composed, decomposed = (unicodedata.normalize(f, "École") for f in ("NFC", "NFD"))
    assert composed != decomposed
    _write(
        tmp_path / "raw",
        CUSTOMER_HEADER
        + f"1,a@x.com,2025-01-01,{composed},US\n2,b@x.com,2025-01-01,{decomposed},US\n",
        ORDER_HEADER + "10,1,2025-01-02T10:00:00Z,completed,5,,USD\n",
        SPEND_HEADER + f"2025-01-01,{composed},5\n2025-01-01,{decomposed},5\n",
    )
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, tmp_path / "raw")
        channels = con.execute("select distinct acquisition_channel from raw.customers").fetchall()
        assert channels == [(unicodedata.normalize("NFC", "école"),)]
        # the same day and channel twice with the same spend: one row, the copy is held
        assert _reasons(con) == {("marketing_spend", 3): "exact_duplicate"}


def test_dbt_threads_are_checked_before_dbt_starts(monkeypatch):
    """dbt's profile reads the variable through ``| int``, which makes ``abc`` 0 silently."""
    for bad in ("abc", "0", "-1", "2.5"):
        monkeypatch.setenv("LTV_DBT_THREADS", bad)
        with pytest.raises(ValueError, match=f"LTV_DBT_THREADS='{bad}'"):
            build_resources()
    monkeypatch.setenv("LTV_DBT_THREADS", "3")
    assert settings.dbt_threads() == 3
    monkeypatch.delenv("LTV_DBT_THREADS")
    assert settings.dbt_threads() == 2
    monkeypatch.setenv("LTV_SPARK_DRIVER_MEMORY", "4 gigs")
    with pytest.raises(ValueError, match="LTV_SPARK_DRIVER_MEMORY='4 gigs'"):
        build_resources()
    monkeypatch.setenv("LTV_SPARK_DRIVER_MEMORY", "512m")
    assert settings.spark_driver_memory() == "512m"
    for bad in ("0", "two", "2.0"):
        monkeypatch.setenv("LTV_SPARK_SHUFFLE_PARTITIONS", bad)
        with pytest.raises(ValueError, match=f"LTV_SPARK_SHUFFLE_PARTITIONS='{bad}'"):
            build_resources()
    monkeypatch.setenv("LTV_SPARK_SHUFFLE_PARTITIONS", "4")
    assert settings.spark_shuffle_partitions() == 4
    monkeypatch.setenv("LTV_SPARK_JAVA_OPTIONS", "-XX:+UseSerialGC Xmx2g")
    with pytest.raises(
        ValueError, match=re.escape("LTV_SPARK_JAVA_OPTIONS='-XX:+UseSerialGC Xmx2g'")
    ):
        build_resources()
    monkeypatch.setenv("LTV_SPARK_JAVA_OPTIONS", " -XX:TieredStopAtLevel=1  -XX:+UseSerialGC ")
    assert settings.spark_java_options() == ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    for bad in ("hooks.example.com/x", "ftp://example.com/x", "https://"):
        monkeypatch.setenv("LTV_ALERT_WEBHOOK_URL", bad)
        with pytest.raises(ValueError, match=re.escape(f"LTV_ALERT_WEBHOOK_URL='{bad}'")):
            build_resources()
    monkeypatch.setenv("LTV_ALERT_WEBHOOK_URL", " https://hooks.example.com/T0/B1 ")
    assert settings.alert_webhook_url() == "https://hooks.example.com/T0/B1"
    monkeypatch.delenv("LTV_ALERT_WEBHOOK_URL")
    assert settings.alert_webhook_url() is None


def test_the_warehouse_is_readable_by_its_owner_only(tmp_path):
    raw = tmp_path / "raw"
    _write(
        raw,
        CUSTOMER_HEADER + "1,a@x.com,2025-01-01,email,US\n",
        ORDER_HEADER + "10,1,2025-01-02T10:00:00Z,completed,5,,USD\n",
        SPEND_HEADER + "2025-01-01,email,5\n",
    )
    path = tmp_path / "new" / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path=str(path))
    warehouse.load_raw(raw, currency="USD", log=lambda _: None, full_refresh=False)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    # an older warehouse created world-readable is narrowed on the next open
    path.chmod(0o644)
    with warehouse.connect():
        pass
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
