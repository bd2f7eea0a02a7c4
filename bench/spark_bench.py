"""Spark rows of the pipeline benchmark: the same shops and runs as ``pipeline_bench.py``, with
``LTV_WAREHOUSE=spark`` (a local Spark session on this machine's cores).

    .venv/bin/python bench/spark_bench.py --orders 1000000 10000000 \\
        [--runs full incremental] [--out bench/results/spark.md]

Per size: the seeded Parquet shop of ``pipeline_bench.py`` (history as monthly files), a full
``ltv run`` into a new Spark warehouse (``<workdir>/<orders>/spark/``), then the incremental
night with the last day's file added. Wall time, peak RSS of the process tree (the Dagster
process with its JVM, and dbt's with its own) and seconds per Dagster step. Honest figures on
two cores: Spark's fixed costs (JVM start per session, a job per model and test, a Parquet
partition per order day) dominate at these sizes; its point is that the same code scales out.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import (
    BIN,
    GENERATE,
    GIB,
    REPO,
    RUNS,
    SEED,
    STAGES,
    git_commit,
    measure,
    split_by_month,
    step_seconds,
)


def bench_size(n: int, workdir: Path, runs: tuple[str, ...]) -> dict:
    say = lambda msg: print(f"[spark {n:,}] {msg}", flush=True)  # noqa: E731
    root = workdir / f"spark-{n}"
    shutil.rmtree(root, ignore_errors=True)
    raw, home = root / "raw", root / "dagster_home"
    raw.mkdir(parents=True)
    home.mkdir()
    gen = measure(
        [str(BIN / "python"), "-c", GENERATE, str(raw), str(n), str(SEED)], root / "gen.log"
    )
    full = root / "orders_full.parquet"
    os.replace(raw / "orders.parquet", full)
    split = split_by_month(full, raw / "orders")
    env = {
        **os.environ,
        "LTV_DATA_DIR": str(root),
        "LTV_WAREHOUSE": "spark",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "DAGSTER_HOME": str(home),
    }
    result = {"orders": gen["result"]["orders"], "customers": gen["result"]["customers"]}
    for name in runs:
        if name == "incremental":
            last = Path(split["last_file"])
            os.replace(last, raw / "orders" / last.name)
        say(f"ltv run ({name})")
        run = measure([str(BIN / "ltv"), "run"], root / f"run_{name}.log", env)
        log = run.pop("log")
        run["steps"] = step_seconds(log)
        result[name] = run
        say(f"{name}: {run['wall']:.1f}s, {run['tree_rss'] / GIB:.2f} GiB")
    result["spark_gb"] = (
        sum(p.stat().st_size for p in (root / "spark").rglob("*") if p.is_file()) / GIB
    )
    return result


def report(results: list[dict], command: str, started: str, load: tuple[float, float]) -> str:
    import pyspark

    commit = git_commit()

    out = [
        "# Pipeline benchmark on a local Spark session (LTV_WAREHOUSE=spark)",
        "",
        f"- date: {started} (UTC)",
        f"- command: `{command}`",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}; 1-min load average "
        f"{load[0]:.2f} at start, {load[1]:.2f} at end",
        f"- git commit: {commit}; pyspark {pyspark.__version__}, Spark master local[*]",
        "",
        "Same shops and runs as `pipeline_bench.py` (DuckDB rows there). Seconds, GiB.",
        "",
        "| orders | customers | full s | full RSS | incremental s | incr. RSS | Spark files GiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        f, i = r.get("full"), r.get("incremental")
        cells = [
            f"{r['orders']:,}",
            f"{r['customers']:,}",
            f"{f['wall']:.1f}" if f else "-",
            f"{f['tree_rss'] / GIB:.2f} ({f['proc_rss'] / GIB:.2f})" if f else "-",
            f"{i['wall']:.1f}" if i else "-",
            f"{i['tree_rss'] / GIB:.2f} ({i['proc_rss'] / GIB:.2f})" if i else "-",
            f"{r['spark_gb']:.2f}",
        ]
        out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        "Seconds per Dagster step:",
        "",
        "| orders | run | " + " | ".join(STAGES) + " | other steps |",
        "|---:|---|" + "---:|" * (len(STAGES) + 1),
    ]
    for r in results:
        for name in RUNS:
            if name not in r:
                continue
            steps = r[name]["steps"]
            known = [steps.get(key, 0.0) for key in STAGES.values()]
            other = sum(steps.values()) - sum(known)
            cells = [f"{r['orders']:,}", name, *(f"{s:.1f}" for s in known), f"{other:.1f}"]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ltv-bench"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "spark.md")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python", "bench/spark_bench.py", *sys.argv[1:]])
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    load0 = os.getloadavg()[0]
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    measure([str(BIN / "ltv"), "prepare"], workdir / "prepare.log")
    results = []
    for n in sorted(args.orders):
        results.append(bench_size(n, workdir, tuple(args.runs)))
        if not args.keep:
            shutil.rmtree(workdir / f"spark-{n}", ignore_errors=True)
        text = report(results, command, started, (load0, os.getloadavg()[0]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
