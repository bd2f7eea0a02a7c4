"""What the key tests of the full run's longest chain cost its dbt build (issue 18).

In ``dbt build`` a model's data tests hold back the models built from it. On a full run the
chain ``stg_shop__orders`` -> ``int_orders_valued`` -> ``int_purchases_grouped`` ->
``int_purchase_months_grouped`` waits on four key tests that group every row
(:data:`CHAIN_KEY_TESTS`). This script measures an upper bound of what moving them off that
chain could give: the same build with and without them, alternating in one sitting.

Run on a shop the pipeline bench kept (``bench/pipeline_bench.py --keep``):

    .venv/bin/python bench/dbt_key_tests_bench.py --raw-dir /tmp/ltv-bench/10000000/raw \
        [--pairs 5] [--workdir /tmp/ltv-key-tests] [--out bench/results/dbt_key_tests.md]

The raw layer is loaded once (:func:`ltv_pipeline.ingest.duckdb.load_raw`) into a DuckDB file;
each build starts from a copy of it, as the full run's dbt step does (a new warehouse with the
raw layer alone). Wall time, and user + system CPU of the dbt process tree, per build.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import duckdb

from ltv_pipeline import settings
from ltv_pipeline.ingest.duckdb import load_raw

REPO = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"

#: The key tests on the full run's longest chain of models, first to last.
CHAIN_KEY_TESTS = (
    "stg_shop__orders_order_id_unique",
    "int_orders_valued_order_id_unique",
    "int_purchases_grouped_customer_day_unique",
    "int_purchase_months_grouped_customer_month_unique",
)


def build(warehouse: Path, loaded: Path, exclude: tuple[str, ...], log: Path) -> dict:
    """One ``ltv dbt build`` on a fresh copy of ``loaded``: wall and CPU seconds."""
    warehouse.unlink(missing_ok=True)
    shutil.copyfile(loaded, warehouse)
    command = [str(BIN / "ltv"), "dbt", "build", "--quiet"]
    if exclude:
        command += ["--exclude", *exclude]
    env = {
        **os.environ,
        settings.DUCKDB_ENV: str(warehouse),
        settings.DATA_DIR_ENV: str(warehouse.parent),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"dbt build failed (exit {done.returncode}): {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ltv-key-tests"))
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/dbt_key_tests.md")
    parser.add_argument("--load-time", default="2026-06-18", help="'now' for the raw rules")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    loaded = args.workdir / "loaded.duckdb"
    loaded.unlink(missing_ok=True)
    with duckdb.connect(str(loaded)) as con:
        report = load_raw(
            con, args.raw_dir.resolve(), load_time=dt.datetime.fromisoformat(args.load_time)
        )
    subprocess.run([str(BIN / "ltv"), "prepare"], check=True, stdout=subprocess.DEVNULL)
    # named like the pipeline's, so dbt's saved parse state holds for every build
    warehouse = args.workdir / "warehouse.duckdb"
    build(warehouse, loaded, (), args.workdir / "warm.log")  # parse state, page cache
    walls: dict[str, list[dict]] = {"with": [], "without": []}
    for pair in range(args.pairs):
        for name, exclude in (("with", ()), ("without", CHAIN_KEY_TESTS)):
            log = args.workdir / f"{name}{pair}.log"
            walls[name].append(build(warehouse, loaded, exclude, log))
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()

    def fmt(name: str, key: str) -> str:
        return ", ".join(f"{r[key]:.1f}" for r in walls[name])

    med = {n: statistics.median(r["wall"] for r in walls[n]) for n in walls}
    cpu = {n: statistics.median(r["cpu"] for r in walls[n]) for n in walls}
    lines = [
        "# The full run's dbt build with and without the key tests of its longest chain",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} (UTC); git commit {commit}",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}",
        f"- shop: `{args.raw_dir}`, {report.rows_loaded:,} raw rows loaded",
        f"- command: `.venv/bin/python bench/dbt_key_tests_bench.py --raw-dir {args.raw_dir} "
        f"--pairs {args.pairs}`",
        f"- tests left out in `without`: {', '.join(f'`{t}`' for t in CHAIN_KEY_TESTS)}",
        "",
        "Each build: `ltv dbt build` on a copy of the warehouse holding the raw layer alone, "
        "alternating with and without those tests. Seconds; CPU = user + system of the dbt "
        "process tree.",
        "",
        "| build | walls | median wall | CPU | median CPU | cores busy (median CPU / wall) |",
        "|---|---|---:|---|---:|---:|",
    ]
    for name in walls:
        lines.append(
            f"| {name} the tests | {fmt(name, 'wall')} | {med[name]:.1f} | {fmt(name, 'cpu')} | "
            f"{cpu[name]:.1f} | {cpu[name] / med[name]:.2f} |"
        )
    lines += [
        "",
        f"Leaving the four tests out saves {med['with'] - med['without']:.1f} s of the median "
        f"wall and {cpu['with'] - cpu['without']:.1f} s of CPU: an upper bound for running them "
        "beside the chain rather than on it.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
