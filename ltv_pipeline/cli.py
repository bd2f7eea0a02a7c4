"""The ``ltv`` command: generate sample data, prepare dbt, run every asset, summarise."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from ltv_pipeline import settings


def _has_raw_files(raw_dir: Path) -> bool:
    return raw_dir.is_dir() and any(
        p.suffix in {".csv", ".parquet"} for p in raw_dir.rglob("*") if p.is_file()
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from ltv_pipeline.generate import generate_shop

    out = Path(args.out).resolve() if args.out else settings.raw_dir()
    window = {k: v for k, v in (("start_date", args.start), ("end_date", args.end)) if v}
    summary = generate_shop(
        out,
        customers=args.customers,
        orders=args.orders,
        seed=args.seed,
        fmt=args.format,
        bad_share=args.bad_share,
        progress=lambda msg: print(f"  {msg}", flush=True),
        **window,
    )
    print(
        f"wrote {summary.customers:,} customers and {summary.orders:,} orders to {out} "
        f"in {summary.seconds:.1f}s"
    )
    return 0


def dbt_env() -> dict[str, str]:
    """Environment for a dbt subprocess: the same warehouse file the Python side uses."""
    return {
        **os.environ,
        settings.DUCKDB_ENV: str(settings.duckdb_path()),
        "DBT_PROJECT_DIR": str(settings.DBT_PROJECT_DIR),
    }


PARSE_STAMP = "ltv_parse_inputs.sha256"


def parse_inputs() -> str:
    """A digest of everything ``dbt parse`` reads: the project's files and dbt's environment.

    The environment counts because the manifest records it (the warehouse file's name is the
    database of every relation, and ``env_var`` may appear anywhere).
    """
    digest = hashlib.sha256()
    project = settings.DBT_PROJECT_DIR
    skip = {"target", "logs", "dbt_packages"}
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if path.is_file() and relative.parts[0] not in skip:
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name, value in sorted(dbt_env().items()):
        if name.startswith(("LTV_", "DBT_")):
            digest.update(f"{name}={value}\0".encode())
    digest.update(str(settings.dbt_executable().resolve()).encode())
    return digest.hexdigest()


def prepare(*, force: bool = False) -> bool:
    """Parse the dbt project so the manifest Dagster loads exists and is current.

    Skipped (about 6 s saved on every run) when the manifest was written from the same
    project files and environment. Returns whether dbt parse ran.
    """
    target = settings.DBT_PROJECT_DIR / "target"
    stamp = target / PARSE_STAMP
    wanted = parse_inputs()
    current = (target / "manifest.json").exists() and stamp.exists()
    if current and not force and stamp.read_text() == wanted:
        return False
    stamp.unlink(missing_ok=True)
    returncode = run_dbt(["parse", "--quiet"])
    if returncode != 0:
        raise SystemExit(f"dbt parse failed (exit {returncode})")
    stamp.write_text(wanted)
    return True


def run_dbt(dbt_args: list[str]) -> int:
    """Run the dbt beside this Python on our project, against the configured warehouse."""
    project = str(settings.DBT_PROJECT_DIR)
    command = [str(settings.dbt_executable()), *dbt_args]
    command += ["--project-dir", project, "--profiles-dir", project]
    return subprocess.run(command, env=dbt_env(), check=False).returncode


def cmd_prepare(args: argparse.Namespace) -> int:
    parsed = prepare(force=args.force)
    state = "parsed" if parsed else "unchanged since the last parse"
    print(f"dbt manifest ready ({state}): {settings.DBT_PROJECT_DIR / 'target' / 'manifest.json'}")
    return 0


def cmd_dbt(args: argparse.Namespace) -> int:
    return run_dbt(args.dbt_args)


def run_all(*, instance=None) -> bool:
    """Materialize every asset (and run every check) once, in this process."""
    import dagster as dg

    from ltv_pipeline.definitions import defs
    from ltv_pipeline.jobs import all_assets_job

    if instance is None:
        instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    job = defs().resolve_job_def(all_assets_job.name)
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    return result.success


def summary() -> dict:
    """Key figures of the last run, read from the warehouse (either engine)."""
    from ltv_pipeline.resources import build_resources

    warehouse = build_resources()["warehouse"]
    try:
        with warehouse.session() as db:
            loaded, held = db.row(
                "select (select count(*) from raw.customers) + (select count(*) from raw.orders)"
                " + (select count(*) from raw.marketing_spend), "
                "(select count(*) from raw.quarantine)"
            )
            customers, buyers, revenue, margin = db.row(
                "select count(*), sum(case when has_purchased then 1 else 0 end), "
                "sum(net_revenue), sum(gross_margin) from marts.customers"
            )
            predicted_clv, backtest_error, backtest_mae, baseline_mae = db.row(
                "select (select sum(predicted_clv) from marts.customer_predictions), "
                "(select aggregate_error_pct from marts.clv_backtest where model = 'bgnbd'), "
                "(select mae from marts.clv_backtest where model = 'bgnbd'), "
                "(select mae from marts.clv_backtest where model = 'historical_average')"
            )
        marts = warehouse.mart_tables("marts")
    finally:
        warehouse.release()
    return {
        "rows_loaded": int(loaded),
        "rows_quarantined": int(held),
        "customers": int(customers),
        "purchasing_customers": int(buyers or 0),
        "net_revenue": float(revenue or 0),
        "gross_margin": float(margin or 0),
        "predicted_clv_12m": None if predicted_clv is None else float(predicted_clv),
        "backtest_error_pct": None if backtest_error is None else float(backtest_error),
        "backtest_mae": None if backtest_mae is None else float(backtest_mae),
        "baseline_mae": None if baseline_mae is None else float(baseline_mae),
        "warehouse": warehouse.location(),
        "published": str(settings.published_dir() / "marts.duckdb"),
        "marts": [f"marts.{name}" for name in marts],
    }


def _clv_line(figures: dict) -> str:
    if figures["predicted_clv_12m"] is None or figures["backtest_mae"] is None:
        return "  predicted CLV (12m)   not fitted (too little data; see customer_predictions)"
    return (
        f"  predicted CLV (12m)   {figures['predicted_clv_12m']:>14,.2f}   (backtest: total "
        f"{figures['backtest_error_pct']:+.1f}%, MAE {figures['backtest_mae']:.3f} vs "
        f"{figures['baseline_mae']:.3f} naive)"
    )


def print_summary(figures: dict) -> None:
    print(
        "\n".join(
            [
                "",
                "ltv-pipeline: run complete",
                f"  raw rows loaded       {figures['rows_loaded']:>14,}",
                f"  raw rows quarantined  {figures['rows_quarantined']:>14,}   "
                "(see raw.quarantine)",
                f"  customers             {figures['customers']:>14,}   "
                f"({figures['purchasing_customers']:,} with a purchase)",
                f"  net revenue           {figures['net_revenue']:>14,.2f}",
                f"  gross margin          {figures['gross_margin']:>14,.2f}",
                _clv_line(figures),
                f"  warehouse             {figures['warehouse']}",
                f"  published for BI      {figures['published']}   (read-only snapshot)",
                f"  marts                 {', '.join(figures['marts'])}",
            ]
        )
    )


def cmd_run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    raw = settings.raw_dir()
    if not _has_raw_files(raw):
        print(f"no raw files in {raw}: generating the sample shop", flush=True)
        cmd_generate(
            argparse.Namespace(
                out=None,
                customers=None,
                orders=None,
                seed=42,
                format="csv",
                bad_share=0.002,
                start=date(2024, 7, 1),
                end=date(2026, 6, 30),
            )
        )
    if settings.warehouse() == "spark":
        # a local Spark binds a non-loopback address unless told otherwise (dbt's too)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    prepare()
    ok = run_all()
    if not ok:
        print("run failed: see the log above (or the run in the Dagster UI)", file=sys.stderr)
        return 1
    figures = summary()
    print_summary(figures)
    print(f"  wall time             {time.perf_counter() - started:>13.1f}s")
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    figures = summary()
    print(json.dumps(figures, indent=2) if args.json else "")
    if not args.json:
        print_summary(figures)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a seeded synthetic shop")
    gen.add_argument("--out", help="output folder (default: $LTV_DATA_DIR/raw)")
    size = gen.add_mutually_exclusive_group()
    size.add_argument("--customers", type=int, help="number of customers (default 5000)")
    size.add_argument("--orders", type=int, help="about this many orders")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--format", choices=["csv", "parquet"], default="csv")
    gen.add_argument(
        "--bad-share",
        type=float,
        default=0.0,
        help="extra bad rows as a share of orders (CSV only), e.g. 0.01",
    )
    gen.add_argument("--start", type=date.fromisoformat, help="first day (default 2024-07-01)")
    gen.add_argument("--end", type=date.fromisoformat, help="last day (default 2026-06-30)")
    gen.set_defaults(func=cmd_generate)

    prep = sub.add_parser("prepare", help="parse the dbt project (writes the manifest)")
    prep.add_argument("--force", action="store_true", help="parse even if nothing changed")
    prep.set_defaults(func=cmd_prepare)

    run = sub.add_parser("run", help="generate data if absent, then materialize every asset")
    run.add_argument("--json", action="store_true", help="also print the summary as JSON")
    run.set_defaults(func=cmd_run)

    summ = sub.add_parser("summary", help="key figures of the last run")
    summ.add_argument("--json", action="store_true")
    summ.set_defaults(func=cmd_summary)

    dbt = sub.add_parser("dbt", help="run dbt against the configured warehouse")
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER)
    dbt.set_defaults(func=cmd_dbt)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
