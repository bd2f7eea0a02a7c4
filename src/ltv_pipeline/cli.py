"""The ``ltv`` command: generate sample data, prepare dbt, run every asset, summarise."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from ltv_pipeline import settings


def _has_raw_files(raw_dir: Path) -> bool:
    """Whether the drop holds any file the loader reads (``.CSV`` and ``.csv.gz`` too), so a
    shop's compressed export is never mistaken for an empty drop and mixed with the sample."""
    from ltv_pipeline.ingest.files import input_suffix

    return raw_dir.is_dir() and any(
        input_suffix(p) is not None for p in raw_dir.rglob("*") if p.is_file()
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from ltv_pipeline.sample.generate import generate_shop

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
    """Environment for a dbt subprocess: the same warehouse file the Python side uses.

    Every ``LTV_*`` setting is checked first (:func:`settings.check_environment`): dbt's
    profile reads some of them itself and would take a bad value silently.
    """
    settings.check_environment()
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


#: The marts the Python assets write (not dbt): a dbt-only rebuild leaves them as they were.
#: Each stores the ``as_of_date`` it describes (tests check this list against the assets).
PYTHON_MARTS = (
    "customer_predictions",
    "clv_backtest",
    "cohort_retention",
    "cohort_retention_wide",
    "customer_revenue_deciles",
    "customer_segments",
    "segment_summary",
)
#: dbt commands that rebuild models (and so may move ``int_reporting_window``).
DBT_BUILDING = frozenset({"build", "run"})


def cmd_dbt(args: argparse.Namespace) -> int:
    returncode = run_dbt(args.dbt_args)
    # the subcommand is the first bare word (global flags such as --quiet may come first)
    command = next((arg for arg in args.dbt_args if not arg.startswith("-")), None)
    if command in DBT_BUILDING:
        warning = stale_marts_warning()
        if warning:
            print(warning, file=sys.stderr)
    return returncode


def python_marts_as_of() -> tuple[date | None, dict[str, date | None]]:
    """``int_reporting_window.as_of_date``, and the ``as_of_date`` each Python mart holds.

    A mart that does not exist yet, or predates the ``as_of_date`` column, is left out; one
    holding several dates (it should not) maps to None.
    """
    from ltv_pipeline.defs.resources import build_resources

    warehouse = build_resources()["warehouse"]
    held: dict[str, date | None] = {}
    try:
        existing = set(warehouse.mart_tables("marts"))
        with warehouse.session() as db:
            window = db.row("select as_of_date from intermediate.int_reporting_window")
            for name in PYTHON_MARTS:
                if name not in existing:
                    continue
                if "as_of_date" not in db.frame(f"select * from marts.{name} limit 0").columns:
                    continue
                low, high = db.row(f"select min(as_of_date), max(as_of_date) from marts.{name}")
                if low is not None:
                    held[name] = _day(low) if low == high else None
    finally:
        warehouse.release()
    return (_day(window[0]) if window else None), held


def _day(value: date | datetime) -> date:
    # DuckDB returns dates; a Spark frame (or a pandas min()) may return timestamps
    return value.date() if isinstance(value, datetime) else value


def _marts_reading_predictions() -> list[str]:
    """dbt marts built from ``customer_predictions`` (the manifest's graph; [] without it)."""
    manifest = settings.DBT_PROJECT_DIR / "target" / "manifest.json"
    try:
        graph = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return []
    children = graph.get("child_map", {})
    nodes = graph.get("nodes", {})
    todo = [k for k in children if k.startswith("source.") and k.endswith(".customer_predictions")]
    seen: set[str] = set()
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return sorted(
        f"marts.{nodes[k]['name']}"
        for k in seen
        if k.startswith("model.") and nodes.get(k, {}).get("fqn", [None, None])[1] == "marts"
    )


def stale_marts_warning() -> str | None:
    """A warning when the Python marts describe another ``as_of_date`` than the dbt marts.

    ``ltv dbt build --vars '{as_of_date: ...}'`` rebuilds the dbt models only: the Python
    outputs (predictions, backtest, cohorts, deciles, segments) keep their old date, and the
    dbt marts that read the predictions mix the two. Returns None when they agree.
    """
    try:
        window, held = python_marts_as_of()
    except Exception as exc:  # a warning must never turn a dbt success into a failure
        return f"warning: could not compare the Python marts' as_of_date with dbt's: {exc}"
    stale = {name: day for name, day in held.items() if day != window}
    if window is None or not stale:
        return None
    dates = sorted({str(day or "several dates") for day in stale.values()})
    lines = [
        f"warning: dbt built the marts as of {window}, but these Python marts are now stale "
        f"and still describe {' / '.join(dates)}:",
        *(f"  marts.{name}  (as_of_date {day or 'several dates'})" for name, day in stale.items()),
    ]
    readers = _marts_reading_predictions()
    if "customer_predictions" in stale and readers:
        lines.append(
            f"  {', '.join(readers)} read marts.customer_predictions, so their predicted CLV "
            "is stale too."
        )
    lines += [
        "  Nothing was published: the BI snapshot is unchanged.",
        "  Rebuild every asset, the Python marts included, and publish it with:",
        f"    ltv run --as-of {window}",
    ]
    return "\n".join(lines)


def dbt_run_config(as_of_date: date | None, node_names: list[str]) -> dict:
    """Run config that builds every dbt step of a job as of ``as_of_date`` (a backfill).

    The job splits the dbt models into steps around the Python assets that dbt reads back
    (``dbt_models``, ``dbt_models_2``): each needs the same vars, or the models after the
    predictions are built for another day than those before.
    """
    if as_of_date is None:
        return {}
    config = {"config": {"as_of_date": as_of_date.isoformat()}}
    return {"ops": {name: config for name in node_names if name.startswith("dbt_models")}}


def run_all(*, instance=None, as_of_date: date | None = None) -> bool:
    """Materialize every asset (and run every check) once, in this process.

    With ``as_of_date``, every asset is rebuilt as of that day (dbt and Python outputs alike)
    and the snapshot published for it: a backfill.
    """
    import dagster as dg

    from ltv_pipeline.definitions import defs
    from ltv_pipeline.defs.resources import build_resources
    from ltv_pipeline.defs.schedules import all_assets_job

    if instance is None:
        instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    job = defs().resolve_job_def(all_assets_job.name)
    run_config = dbt_run_config(as_of_date, list(job.graph.node_dict))
    tags = {"ltv/as_of_date": as_of_date.isoformat()} if as_of_date else None
    result = job.execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config or None, tags=tags
    )
    if not result.success and build_resources()["warehouse"].restore_last_good():
        print("the warehouse was put back to the last good night", file=sys.stderr)
    return result.success


def summary() -> dict:
    """Key figures of the last run, read from the warehouse (either engine)."""
    from ltv_pipeline.defs.resources import build_resources

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
            verdict, reason = db.row(
                "select verdict, verdict_reason from marts.clv_backtest where model = 'bgnbd'"
            )
            (as_of_date,) = db.row("select as_of_date from intermediate.int_reporting_window")
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
        "backtest_verdict": verdict,
        "backtest_verdict_reason": reason,
        "as_of_date": str(_day(as_of_date)),
        "warehouse": warehouse.location(),
        "published": str(settings.published_dir() / "marts.duckdb"),
        "marts": [f"marts.{name}" for name in marts],
    }


def _clv_line(figures: dict) -> str:
    if figures["predicted_clv_12m"] is None or figures["backtest_mae"] is None:
        return "  predicted CLV (12m)   not fitted (too little data; see customer_predictions)"
    line = (
        f"  predicted CLV (12m)   {figures['predicted_clv_12m']:>14,.2f}   (backtest: total "
        f"{figures['backtest_error_pct']:+.1f}%, MAE {figures['backtest_mae']:.3f} vs "
        f"{figures['baseline_mae']:.3f} naive)"
    )
    if figures.get("backtest_verdict") not in (None, "ok"):
        line += (
            f"\n  backtest verdict      {figures['backtest_verdict']}: "
            f"{figures['backtest_verdict_reason']}"
        )
    return line


def print_summary(figures: dict) -> None:
    print(
        "\n".join(
            [
                "",
                "ltv-pipeline: run complete",
                f"  as of                 {figures['as_of_date']:>14}",
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
    ok = run_all(as_of_date=args.as_of)
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


def as_of_argument(value: str) -> date:
    """``--as-of``: an ISO date, not after today (orders later than the load are held)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if len(value) != 10:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)")
    today = datetime.now(UTC).date()
    if day > today:
        raise argparse.ArgumentTypeError(f"{value} is after today ({today})")
    return day


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
    run.add_argument(
        "--as-of",
        type=as_of_argument,
        metavar="YYYY-MM-DD",
        help="rebuild every asset as of this day and publish it (a backfill; default: the "
        "last order date)",
    )
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
