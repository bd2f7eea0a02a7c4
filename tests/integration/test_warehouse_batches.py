"""Reading a result in batches and replacing a table from batches, on a real DuckDB file."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from ltv_pipeline.defs import with_as_of_date
from ltv_pipeline.warehouse.duckdb import DuckDBWarehouse


def test_batches_cover_the_result_once_in_order_and_replace_keeps_the_old_table_on_failure(
    tmp_path,
):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    with warehouse.session() as db:
        db.con.execute("create table numbers as select range as n from range(2500)")
        db.con.execute("create schema marts")
        db.con.execute("create table marts.squares as select 1 as n, 1 as square")
        sizes = [len(b) for b in db.batches("select n from numbers order by n", 1000)]
        assert sizes == [1000, 1000, 500]

        # one empty batch, with the columns, when the result is empty
        (empty,) = db.batches("select n, n * 2 as twice from numbers where n < 0", 1000)
        assert empty.empty and list(empty.columns) == ["n", "twice"]

        def squares(stop_after: int | None = None):
            for i, batch in enumerate(db.batches("select n from numbers order by n", 700)):
                if i == stop_after:
                    raise RuntimeError("the third batch fails")
                yield batch.assign(square=batch["n"] ** 2)

        # a failure part way leaves the old table as it was
        with pytest.raises(RuntimeError, match="third batch"):
            db.replace_table_batches("marts.squares", squares(stop_after=2), "n")
        assert db.frame("select * from marts.squares").values.tolist() == [[1, 1]]

        assert db.replace_table_batches("marts.squares", squares(), "n") == 2500
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        stored = con.execute("select n, square from marts.squares").df()
    # in the batches' order, every row once
    pd.testing.assert_series_equal(stored["n"], pd.Series(range(2500), name="n"), check_dtype=False)
    assert (stored["square"] == stored["n"] ** 2).all()


@pytest.mark.parametrize(
    ("day", "days_since_1970"),
    # worked out by hand: 1970-01-01 is day 0, 2000-03-01 follows a leap day (10957 + 60),
    # 1969-12-31 is day -1 (a date before the epoch must not wrap around)
    [(dt.date(1970, 1, 1), 0), (dt.date(2000, 3, 1), 11017), (dt.date(1969, 12, 31), -1)],
)
def test_with_as_of_date_stores_the_day_as_a_date_column(tmp_path, day, days_since_1970):
    # a frame with a non-default index (a batch from the middle of a result) and an empty one
    frame = pd.DataFrame({"customer_id": [7, 8, 9]}, index=[10, 11, 12])
    dated = with_as_of_date(frame, day)
    assert list(dated.index) == [10, 11, 12] and "as_of_date" not in frame.columns
    assert dated["as_of_date"].tolist() == [day] * 3
    empty = with_as_of_date(frame.iloc[:0], day)
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    with warehouse.session() as db:
        db.replace_table_batches("marts.dated", iter([dated]), "customer_id")
        db.replace_table_batches("marts.none", iter([empty]), "customer_id")
        stored = db.con.execute(
            "select customer_id, as_of_date, epoch(as_of_date) // 86400 from marts.dated"
        ).fetchall()
        types = db.con.execute(
            "select table_name, data_type from information_schema.columns "
            "where column_name = 'as_of_date' order by table_name"
        ).fetchall()
    assert stored == [(i, day, days_since_1970) for i in (7, 8, 9)]
    assert types == [("dated", "DATE"), ("none", "DATE")]
