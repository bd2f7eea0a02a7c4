"""Reading a result in batches and replacing a table from batches, on a real DuckDB file."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

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
