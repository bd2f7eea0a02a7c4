"""The ``ltv`` command: generate sample data, prepare dbt, run every asset, summarise."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from ltv_pipeline import settings
from ltv_pipeline.dbt_runner import parse_state_without_folders, prepare, run_dbt
from ltv_pipeline.dbt_server import delegate, warm_dbt
from ltv_pipeline.runs import (
    DBT_BUILDING,
    begin_night_early,
    run_all,
    stale_marts_warning,
    summary,
)


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


def cmd_prepare(args: argparse.Namespace) -> int:
    parsed = prepare(force=args.force)
    state = "parsed" if parsed else "unchanged since the last parse"
    print(f"dbt manifest ready ({state}): {settings.DBT_PROJECT_DIR / 'target' / 'manifest.json'}")
    return 0


def cmd_dbt(args: argparse.Namespace) -> int:
    returncode = run_dbt(args.dbt_args)
    # the subcommand is the first bare word (global flags such as --quiet may come first)
    command = next((arg for arg in args.dbt_args if not arg.startswith("-")), None)
    if command in DBT_BUILDING:
        warning = stale_marts_warning()
        if warning:
            print(warning, file=sys.stderr)
    return returncode


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
    with warm_dbt():  # dbt's import, on the other core while Dagster's is made here
        begin_night_early()  # and the copy of the last good night, on a thread
        prepare()
        from ltv_pipeline.instance import ensure_instance_config  # imports dagster: only here

        ensure_instance_config()
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


def entry() -> None:
    """The ``ltv`` console script: :func:`main`, then an exit that skips the interpreter's
    teardown once every exit handler has run.

    After a run, Python spends about 1 s freeing the modules and objects of Dagster, dbt,
    pandas and matplotlib (450,000 objects), memory the process gives back anyway: 7% of a
    20k-order run (bench/results/fixed_cost_ab.md). The libraries' own exit handlers (log handlers
    flushed, temporary files removed, file locks released) still run, because this handler is
    registered before any of theirs and handlers run last-registered first. An exception or
    ``SystemExit`` leaving :func:`main` takes Python's ordinary exit.
    """
    code: list[int] = []
    atexit.register(_exit_without_teardown, code)
    returned = main()
    code.append(returned)
    sys.exit(returned)


def dbt_entry() -> None:
    """The ``ltv-dbt`` console script: dbt's own command line, with :func:`entry`'s exit.

    Every dbt subprocess runs through it (:func:`ltv_pipeline.settings.dbt_executable`). In
    ``ltv run``, dbt is already imported in a server the command hands itself to
    (:mod:`ltv_pipeline.dbt_server`); elsewhere, or if that server does not answer, dbt runs
    here (:func:`run_dbt_here`).
    """
    served = delegate(sys.argv)
    if served is not None:
        _exit_without_teardown([served])
    # After its last line, dbt's Python spends about 0.5 s freeing its manifest and modules
    # (0.55 s of 7.6 s for a 20k-order build; bench/results/fixed_cost_ab_dbt_out.md): so the
    # process ends without that teardown, once dbt's exit handlers (registered later, so run
    # earlier) have run.
    code: list[int] = []
    atexit.register(_exit_without_teardown, code)
    code.append(run_dbt_here(sys.argv))
    sys.exit(code[0])


def run_dbt_here(argv: list[str]) -> int:
    """Run dbt's command line on ``argv`` in this process; its exit status (:func:`exit_status`).

    dbt's saved parse state holds for a warehouse file in another folder
    (:func:`~ltv_pipeline.dbt_runner.parse_state_without_folders`).
    """
    from dbt.cli.main import cli

    parse_state_without_folders()
    sys.argv = list(argv)
    try:
        cli()
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)  # as Python prints it on exit
        return exit_status(exc.code)
    return 0


def exit_status(code: object) -> int:
    """The status Python exits with for ``SystemExit(code)``: 0 for None, an int as it is, and
    1 for anything else (whose text Python has printed)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _exit_without_teardown(code: list[int]) -> None:
    if not code:
        return
    for stream in (sys.stdout, sys.stderr):
        # a reader that went away, or a stream already closed
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code[0])


if __name__ == "__main__":
    entry()
