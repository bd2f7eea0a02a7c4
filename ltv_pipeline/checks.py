"""Asset checks on the Python assets: each recomputes its claim independently of the asset."""

import itertools

import dagster as dg

from ltv_pipeline.assets.analytics import MARTS_SCHEMA, customer_revenue_deciles
from ltv_pipeline.assets.ingestion import raw_key
from ltv_pipeline.ingest import (
    LOAD_ORDER,
    QUARANTINE_TABLE,
    RAW_SCHEMA,
    count_input_rows,
    find_files,
)
from ltv_pipeline.resources import DuckDBWarehouse, RawFiles


def _rows_reconcile_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(table),
        name=f"{table}_rows_reconcile",
        blocking=True,
        description=f"Rows in the {table} files = rows loaded + rows quarantined.",
    )
    def _check(warehouse: DuckDBWarehouse, raw_files: RawFiles) -> dg.AssetCheckResult:
        files = find_files(raw_files.path, table)
        rows_in = sum(count_input_rows(path) for path in files)
        with warehouse.connect() as con:
            loaded = con.execute(f'select count(*) from {RAW_SCHEMA}."{table}"').fetchone()[0]
            held = con.execute(
                f"select count(*) from {RAW_SCHEMA}.{QUARANTINE_TABLE} where source_table = ?",
                [table],
            ).fetchone()[0]
        return dg.AssetCheckResult(
            passed=rows_in == loaded + held,
            metadata={
                "rows_in": rows_in,
                "rows_loaded": loaded,
                "rows_quarantined": held,
                "difference": rows_in - loaded - held,
            },
        )

    return _check


raw_checks = [_rows_reconcile_check(table) for table in LOAD_ORDER]


@dg.asset_check(asset=customer_revenue_deciles, blocking=True)
def deciles_reconcile_with_customers(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    """Deciles cover every purchasing customer and all revenue; shares rise to exactly 1."""
    with warehouse.connect() as con:
        mart_customers, mart_revenue = con.execute(
            f"select count(*), coalesce(sum(net_revenue), 0)::double "
            f"from {MARTS_SCHEMA}.customers where has_purchased"
        ).fetchone()
        rows = con.execute(
            "select decile, customers, net_revenue, min_net_revenue, max_net_revenue, "
            f"cumulative_share_of_revenue from {MARTS_SCHEMA}.customer_revenue_deciles "
            "order by decile"
        ).fetchall()
    customers = sum(r[1] for r in rows)
    revenue = sum(r[2] for r in rows)
    cumulative = [r[5] for r in rows]
    problems = []
    if customers != mart_customers:
        problems.append(f"deciles hold {customers} customers, the mart {mart_customers}")
    if abs(revenue - mart_revenue) > 1e-6 * max(1.0, mart_revenue):
        problems.append(f"deciles hold revenue {revenue:.2f}, the mart {mart_revenue:.2f}")
    if any(b < a - 1e-12 for a, b in itertools.pairwise(cumulative)):
        problems.append("cumulative share decreases")
    if rows and mart_revenue > 0 and abs(cumulative[-1] - 1) > 1e-9:
        problems.append(f"cumulative share ends at {cumulative[-1]}, not 1")
    if any(lower[4] > higher[3] for higher, lower in itertools.pairwise(rows)):
        problems.append("a customer in a lower decile out-spends one in a higher decile")
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or "deciles reconcile with marts.customers",
        metadata={
            "customers": customers,
            "mart_customers": mart_customers,
            "net_revenue": revenue,
            "mart_net_revenue": mart_revenue,
        },
    )
