"""Pipeline benchmark: full run and night against a hand-written DuckDB script, the floor, pandas.

Run (or ``make bench`` for the default sizes, 20k, 1M and 10M orders):

    .venv/bin/python bench/pipeline_bench.py --orders 20000 1000000 10000000 [100000000] \
        [--workdir /tmp/ltv-bench] [--out bench/results/pipeline.md]

Per size, a seeded Parquet shop is generated (``generate_shop(seed=7)``) into
``<workdir>/<orders>/raw`` and the orders are split at the last order day:

1. full run: ``ltv run`` on the history (every order before the last day, one Parquet file per
   month under ``raw/orders/``), on a new warehouse;
2. baseline: ``bench/baseline.py`` (one DuckDB script, checked equal to the marts by
   ``tests/integration/test_bench_baseline.py``) on the same files, into a new DuckDB file,
   ``--baseline-runs`` times (default 2; the quickest is compared, so that one slow run of the
   script cannot flatter the pipeline: at 10M it once took 40.5 s on the history and, minutes
   later, 30.3 s on the history and one day more);
3. night: ``ltv run`` again with the last day's orders added as a new file
   ``raw/orders/<day>.parquet`` (the raw load reads only that file; ``fct_orders`` merges
   from its 3-day lookback), and the baseline again on all files: what recomputing by hand costs;
4. model fit: ``forecast.fit_models`` on ``int_customer_purchases_summarized`` (in-process);
5. floor: DuckDB alone, one scan of the orders grouped by customer (fresh process);
6. pandas: the customers mart's purchase columns and RFM quintiles in pandas (fresh process).

Every measured command runs as a fresh process. Wall time is the parent's clock, the whole
process (imports included) for ``ltv run`` and the baseline alike; memory is the
peak of the summed RSS of the whole process tree (``/proc`` polled every 0.2 s; shared pages
count once per process) and the largest single process (``wait4`` ru_maxrss, exact). Floor
and pandas times are their work inside the process (imports excluded). Disk: about 0.15 GiB
per million orders (1.4 GiB at 10M: Parquet, history copy, warehouse, published snapshot);
each size's folder is deleted afterwards unless ``--keep``. Check ``df`` before 100M.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from ltv_pipeline import settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SEED = 7
GIB = 1024**3
RUNS = ("full", "incremental")
BASELINE = REPO / "bench" / "baseline.py"
# stage column -> Dagster step key
STAGES = {
    "raw_tables": "raw_tables",
    "dbt_models": "dbt_models",
    "customer_predictions": "marts__customer_predictions",
    "predicted_value_by_channel": "predicted_value_by_channel",
    "clv_backtest": "marts__clv_backtest",
    "published_marts": "published_marts",
}

GENERATE = """
import json, sys, time
from datetime import date
from pathlib import Path
from ltv_pipeline.sample.generate import generate_shop
window = {"end_date": date.fromisoformat(sys.argv[4])} if sys.argv[4:] else {}
s = generate_shop(
    Path(sys.argv[1]), orders=int(sys.argv[2]), fmt="parquet", seed=int(sys.argv[3]), **window
)
print(json.dumps({"customers": s.customers, "orders": s.orders, "seconds": s.seconds}))
"""

FLOOR = """
import json, sys, time
import duckdb
con = duckdb.connect()
t0 = time.perf_counter()
con.execute(
    "create table c as select customer_id, count(*) as orders, "
    "sum(amount) filter (where status = 'completed') as net_revenue, "
    "min(ordered_at) as first_order_at, max(ordered_at) as last_order_at "
    "from read_parquet($p) group by 1", {"p": sys.argv[1]})
n = con.execute("select count(*) from c").fetchone()[0]
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": n}))
"""

# What a user would write without the warehouse: the customers mart's purchase columns
# (completed orders = purchases, their net revenue, first/last purchase date) for every
# customer, and R/F/M quintile scores (5 = best) of the purchasing customers.
PANDAS = """
import json, sys, time
import pandas as pd
t0 = time.perf_counter()
orders = pd.read_parquet(sys.argv[1], columns=["customer_id", "ordered_at", "status", "amount"])
customers = pd.read_parquet(sys.argv[2], columns=["customer_id"])
as_of = orders["ordered_at"].max().normalize()
done = orders[orders["status"] == "completed"]
done = done.assign(ordered_date=done["ordered_at"].dt.normalize())
agg = done.groupby("customer_id").agg(
    orders=("amount", "size"), net_revenue=("amount", "sum"),
    first_order_date=("ordered_date", "min"), last_order_date=("ordered_date", "max"))
mart = customers.merge(agg, how="left", left_on="customer_id", right_index=True)
buyers = mart[mart["orders"].notna()].copy()
buyers["recency_days"] = (as_of - buyers["last_order_date"]).dt.days
def score(values, ascending=True):
    ranks = values.rank(method="first", ascending=ascending)
    return pd.qcut(ranks, 5, labels=[1, 2, 3, 4, 5]).astype(int)
buyers["r"] = score(buyers["recency_days"], ascending=False)
buyers["f"] = score(buyers["orders"])
buyers["m"] = score(buyers["net_revenue"])
buyers["rfm"] = buyers["r"] * 100 + buyers["f"] * 10 + buyers["m"]
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": len(mart), "buyers": len(buyers)}))
"""


def _name(pid: int) -> str:
    """'python ltv run', 'python dbt build': the first words of a command line, base names."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    return " ".join(Path(a).name for a in argv[:3] if a and not a.startswith("-"))[:40]


def _tree_rss(root: int) -> dict[int, tuple[str, int]]:
    """RSS in bytes (and a name) of ``root`` and each of its descendants, by pid."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - tree
        tree |= frontier
    rss = {}
    for pid in tree:
        try:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            rss[pid] = (_name(pid), pages * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, IndexError, ValueError):
            continue
    return rss


def measure(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` to completion; wall seconds, peak tree RSS, peak RSS per process."""
    peak, by_name, samples = 0, {}, []
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            tree = _tree_rss(proc.pid)
            total = sum(rss for _, rss in tree.values())
            peak = max(peak, total)
            samples.append((time.time(), total))
            for name, rss in tree.values():
                by_name[name] = max(by_name.get(name, 0), rss)
            time.sleep(0.2)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed ({proc.returncode}); see {log}")
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    return {
        "wall": wall,
        "tree_rss": max(peak, usage.ru_maxrss * 1024),
        "proc_rss": usage.ru_maxrss * 1024,  # wait4: the largest single process, exact
        "rss_by_process": by_name,  # polled peaks, per command name
        "rss_samples": samples,  # (unix time, tree RSS), every 0.2 s
        "result": json.loads(lines[-1]) if lines else {},
        "log": text,
    }


_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def step_seconds(log: str) -> dict[str, float]:
    """Dagster step durations ('Finished execution of step "x" in 4m52s.') from a run log."""
    steps: dict[str, float] = {}
    for step, text in re.findall(r'Finished execution of step "([^"]+)" in ([0-9.hms]+)\.', log):
        parts = re.findall(r"([0-9.]+)(ms|h|m|s)", text)
        steps[step] = steps.get(step, 0.0) + sum(float(v) * _UNIT[u] for v, u in parts)
    return steps


def step_peak_rss(log: str, samples: list[tuple[float, int]]) -> dict[str, int]:
    """Peak tree RSS while each Dagster step ran (its STEP_START to its end, 1 s resolution)."""
    events = re.findall(
        r"^(\S+ \S+) \+0000 - dagster - .* - (\S+) - STEP_(START|SUCCESS|FAILURE) - ", log, re.M
    )
    spans: dict[str, list[float]] = {}
    for stamp, step, kind in events:
        t = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
        spans.setdefault(step, [t, t])[0 if kind == "START" else 1] = t
    return {
        step: max((rss for t, rss in samples if start <= t < end + 1), default=0)
        for step, (start, end) in spans.items()
    }


def job_seconds(log: str) -> float:
    """Seconds from Dagster's RUN_START to the run's end (log timestamps, 1 s resolution)."""
    stamps = re.findall(r"^(\S+ \S+) \+0000 - dagster - .* - RUN_(?:START|SUCCESS) - ", log, re.M)
    parsed = [datetime.fromisoformat(s) for s in stamps]
    return (parsed[-1] - parsed[0]).total_seconds() if len(parsed) >= 2 else float("nan")


def dbt_nodes(log: str) -> dict[str, float]:
    """Seconds per dbt node from dbt's '3 of 85 OK created ... model x ..... [OK in 0.20s]'."""
    log = re.sub(r"\x1b\[[0-9;]*m", "", log)
    nodes: dict[str, float] = {}
    for kind, name, secs in re.findall(
        r"^\d+ of \d+ (OK created \S+ \S+ model|\S+) (\S+) \.* \[\S+ in ([0-9.]+)s\]", log, re.M
    ):
        nodes[("model " if "model" in kind else "test ") + name] = float(secs)
    return nodes


def split_by_month(full: Path, folder: Path) -> dict:
    """Write the orders as ``folder/YYYY-MM.parquet`` (history) plus ``folder/<last day>.parquet``.

    Returns the last day and the path of its file, which the incremental night adds: the
    raw load then reads that one file (it keeps which files it read, by size and time).
    """
    folder.mkdir()
    con = duckdb.connect()
    src = f"read_parquet('{full}')"
    (day,) = con.execute(f"select max(ordered_at)::date from {src}").fetchone()
    months = [
        m
        for (m,) in con.execute(
            f"select distinct strftime(ordered_at, '%Y-%m') from {src} "
            "where ordered_at::date < $d order by 1",
            {"d": day},
        ).fetchall()
    ]
    for month in months:
        con.execute(
            f"copy (select * from {src} where strftime(ordered_at, '%Y-%m') = $m "
            "and ordered_at::date < $d) "
            f"to '{folder / (month + '.parquet')}' (format parquet, compression zstd)",
            {"m": month, "d": day},
        )
    last = full.parent / f"{day}.parquet"
    con.execute(
        f"copy (select * from {src} where ordered_at::date >= $d) to '{last}' "
        "(format parquet, compression zstd)",
        {"d": day},
    )
    (n_last,) = con.execute(f"select count(*) from read_parquet('{last}')").fetchone()
    con.close()
    return {"day": str(day), "orders": n_last, "files": len(months), "last_file": str(last)}


def fit_time(warehouse: Path) -> dict:
    """Seconds of ``forecast.fit_models`` on the warehouse's customer summary (in-process)."""
    from ltv_pipeline.clv import forecast

    with duckdb.connect(str(warehouse), read_only=True) as con:
        s = con.execute("select * from intermediate.int_customer_purchases_summarized").df()
    t0 = time.perf_counter()
    forecast.fit_models(s["frequency"], s["recency_days"], s["t_days"], s["monetary_value"])
    return {"seconds": time.perf_counter() - t0, "customers": len(s)}


def _folder_gb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / GIB


def bench_size(
    n: int,
    workdir: Path,
    pandas_budget: float,
    run_names: tuple[str, ...] = RUNS,
    baseline_runs: int = 2,
    end_date: str | None = None,
) -> dict:
    say = lambda msg: print(f"[{n:,}] {msg}", flush=True)  # noqa: E731
    root = workdir / str(n)
    shutil.rmtree(root, ignore_errors=True)
    raw, home = root / "raw", root / "dagster_home"
    raw.mkdir(parents=True)
    home.mkdir()
    py = str(BIN / "python")
    say("generating")
    generate = [py, "-c", GENERATE, str(raw), str(n), str(SEED)]
    gen = measure(generate + ([end_date] if end_date else []), root / "generate.log")
    say(f"generated {gen['result']['orders']:,} orders in {gen['wall']:.1f}s")
    full = root / "orders_full.parquet"
    os.replace(raw / "orders.parquet", full)
    split = split_by_month(full, raw / "orders")
    sizes = {"parquet_gb": full.stat().st_size / GIB}

    env = {
        **os.environ,
        "LTV_DATA_DIR": str(root),
        "LTV_DUCKDB_PATH": str(root / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
    }
    runs, baselines = {}, {}
    for name in run_names:
        if name == "incremental":
            last = Path(split["last_file"])
            os.replace(last, raw / "orders" / last.name)
        say(f"ltv run ({name})")
        runs[name] = run = measure([str(BIN / "ltv"), "run"], root / f"run_{name}.log", env)
        log = run.pop("log")
        run.update(steps=step_seconds(log), job=job_seconds(log), dbt=dbt_nodes(log))
        run["step_rss"] = step_peak_rss(log, run.pop("rss_samples"))
        say(f"{name}: {runs[name]['wall']:.1f}s, {runs[name]['tree_rss'] / GIB:.2f} GiB")
        if name == run_names[-1]:
            # the last run is measured: its copies (the last good night, as large as the
            # warehouse, and the published snapshots) only take the disk the baseline spills to
            sizes["warehouse_gb"] = (root / "warehouse.duckdb").stat().st_size / GIB
            sizes["workdir_gb"] = _folder_gb(root)
            (root / "warehouse.last-good.duckdb").unlink(missing_ok=True)
            shutil.rmtree(root / "published", ignore_errors=True)
        say(f"baseline script after the {name} run's files")
        out_db = root / "baseline.duckdb"
        tries = []
        for attempt in range(baseline_runs):
            base = measure(
                [py, str(BASELINE), "--raw", str(raw), "--out", str(out_db)],
                root / f"baseline_{name}_{attempt}.log",
                env,
            )
            base.pop("log")
            base.pop("rss_samples")
            tries.append(base)
            out_db.unlink(missing_ok=True)
            say(f"baseline ({name}): {base['wall']:.1f}s, {base['tree_rss'] / GIB:.2f} GiB")
        # the script at its quickest: a slow sitting of the baseline must not flatter the run
        baselines[name] = {
            **min(tries, key=lambda m: m["wall"]),
            "walls": [m["wall"] for m in tries],
        }

    say("model fit")
    fit = fit_time(root / "warehouse.duckdb")
    orders = str(full)
    say("floor (duckdb)")
    floor = measure([py, "-c", FLOOR, orders], root / "floor.log")
    pandas = None
    # pandas holds the four columns in memory plus group-by copies: scale from the last size
    if pandas_budget > 0:
        say("pandas")
        pandas = measure([py, "-c", PANDAS, orders, str(raw / "customers.parquet")], root / "p.log")
    else:
        say("pandas skipped: the estimate from the previous size exceeds the memory budget")
    for m in (gen, floor, pandas):
        if m:
            m.pop("log")
            m.pop("rss_samples")
    return {
        "requested": n,
        "orders": gen["result"]["orders"],
        "customers": gen["result"]["customers"],
        "generate": gen,
        "split": split,
        "sizes": sizes,
        "runs": runs,
        "baselines": baselines,
        "fit": fit,
        "floor": floor,
        "pandas": pandas,
    }


def _gib(b: float) -> str:
    return f"{b / GIB:.2f}"


def git_commit() -> str:
    """The checked-out commit, short."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()


def report(
    results: list[dict], command: str, started: str, load: tuple[float, float], prepare: dict
) -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    commit = git_commit()
    out = [
        "# Pipeline benchmark: `ltv run` against a hand-written DuckDB script (issue 18)",
        "",
        f"- date: {started} (UTC)",
        f"- command: `{command}`",
        f"- machine: {os.cpu_count()} CPUs, {mem:.1f} GiB RAM, {platform.platform()}; "
        f"1-min load average {load[0]:.2f} at start, {load[1]:.2f} at end",
        f"- git commit: {commit} (plus the uncommitted bench/ files)",
        f"- python {platform.python_version()}, duckdb {duckdb.__version__}",
        "- DuckDB limits (LTV_DUCKDB_MEMORY_LIMIT, _THREADS, _TEMP_DIR): "
        + (", ".join(f"{k}={v}" for k, v in settings.duckdb_config().items()) or "defaults"),
        "",
        "Times in seconds, RSS in GiB, every figure of a row from one run of this script. "
        "Full = `ltv run` on the history (all orders before the last day, a Parquet file per "
        "month) into a new warehouse; night = `ltv run` again with the last day added as a new "
        "file. Baseline = `bench/baseline.py`, the hand-written one-script build of the same "
        "marts from the same files (no quarantine, fits, backtest, checks or publishing), run "
        "after each (as many times as `--baseline-runs` says; the quickest is shown and "
        "compared, every wall is listed under the table): on the night's files it is what "
        "recomputing everything by hand costs. "
        "Walls and RSS cover the whole process (Python start-up included); RSS is the peak of "
        "the summed RSS of the process tree, with the largest single process in parentheses. "
        "Floor = DuckDB alone, one `read_parquet` scan of the orders grouped by customer; "
        "pandas = `read_parquet` + the customers mart's purchase columns + RFM quintiles; both "
        "exclude imports. Fit = `forecast.fit_models` on `int_customer_purchases_summarized`.",
        "",
        "| orders | customers | floor s | baseline s (RSS) | full s (RSS) | full / baseline "
        "| baseline on the night s | night s (RSS) | night / baseline | night / full "
        "| fit s (buyers) | pandas s (RSS) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(m: dict | None) -> str:
        return f"{m['wall']:.1f} ({_gib(m['tree_rss'])})" if m else "not run"

    for r in results:
        f, i = r["runs"]["full"], r["runs"].get("incremental")
        bf, bi = r["baselines"].get("full"), r["baselines"].get("incremental")
        pd_ = r["pandas"]
        out.append(
            f"| {r['orders']:,} | {r['customers']:,} | {r['floor']['result']['seconds']:.2f} "
            f"| {cell(bf)} | {cell(f)} | {f['wall'] / bf['wall']:.1f}x "
            f"| {cell(bi)} | {cell(i)} "
            + (
                f"| {i['wall'] / bi['wall']:.1f}x | {i['wall'] / f['wall']:.0%} "
                if i
                else "| - | - "
            )
            + f"| {r['fit']['seconds']:.2f} ({r['fit']['customers']:,}) "
            + (
                f"| {pd_['result']['seconds']:.1f} ({_gib(pd_['tree_rss'])}) |"
                if pd_
                else "| skipped (memory) |"
            )
        )
    walls = [
        f"{r['orders']:,} {name}: "
        + ", ".join(f"{w:.1f}" for w in base.get("walls", [base["wall"]]))
        for r in results
        for name, base in r["baselines"].items()
    ]
    out += ["", "Baseline walls, every run (s): " + "; ".join(walls) + "."]
    out += [
        "",
        "## Stages",
        "",
        "Seconds per Dagster step, from the run log. `other steps` = the remaining steps (asset "
        "checks, deciles, segments, cohort retention); `between steps` = Dagster's job time "
        "(RUN_START to RUN_SUCCESS, 1 s resolution) minus all steps; `outside job` = run wall "
        "minus the job (interpreter and Dagster imports, `dbt parse`, loading definitions, the "
        "summary query). The dbt step includes starting dbt; the dbt columns are the sums of "
        "dbt's own per-node times (models, tests); then the slowest nodes.",
        "",
        "| orders | run | wall | " + " | ".join(STAGES) + " | other steps | between steps "
        "| outside job | dbt models | dbt tests | slowest dbt nodes (s) |",
        "|---:|---|" + "---:|" * (len(STAGES) + 6) + "---|",
    ]
    for r in results:
        for name, run in r["runs"].items():
            steps, dbt = run["steps"], run["dbt"]
            known = [steps.get(key, 0.0) for key in STAGES.values()]
            other = sum(v for k, v in steps.items() if k not in STAGES.values())
            cells = [*known, other, run["job"] - sum(steps.values()), run["wall"] - run["job"]]
            cells += [sum(v for k, v in dbt.items() if k.startswith(kind)) for kind in ("m", "t")]
            slowest = sorted(dbt.items(), key=lambda kv: -kv[1])[:4]
            nodes = ", ".join(f"{k} {v:.1f}" for k, v in slowest)
            out.append(
                f"| {r['orders']:,} | {name} | {run['wall']:.1f} | "
                + " | ".join(f"{v:.1f}" for v in cells)
                + f" | {nodes} |"
            )
    out += ["", "Peak RSS per process (GiB, polled every 0.2 s):", ""]
    for r in results:
        for name, run in r["runs"].items():
            procs = sorted(run["rss_by_process"].items(), key=lambda kv: -kv[1])[:3]
            listed = "; ".join(f"`{k}` {_gib(v)}" for k, v in procs)
            out.append(f"- {r['orders']:,} orders, {name}: {listed}")
            steps = sorted(run.get("step_rss", {}).items(), key=lambda kv: -kv[1])[:4]
            if steps:
                by_step = "; ".join(f"`{k}` {_gib(v)}" for k, v in steps)
                out.append(f"  - process tree while the step ran, highest: {by_step}")
    out += ["", "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]

    def target(name: str, value: float, limit: float, unit: str) -> None:
        ok = value <= limit
        margin = f"{1 - value / limit:.0%} under" if ok else f"{value / limit:.1f}x the limit"
        out.append(
            f"| {name} | {value:.2f}{unit} (limit {limit:g}{unit}) | "
            f"{'PASS' if ok else 'FAIL'}, {margin} |"
        )

    for r in results:
        full, night = r["runs"]["full"], r["runs"].get("incremental")
        base_full, base_night = r["baselines"].get("full"), r["baselines"].get("incremental")
        n = r["requested"]
        size = f"{n // 10**6}M" if n >= 10**6 else f"{n // 1000}k"
        if n <= 20_000:
            target(f"{size} full run <= 10 s (fixed cost)", full["wall"], 10, " s")
        if n >= 10**7:
            ratio = full["wall"] / base_full["wall"]
            target(f"{size} full run <= 2x the baseline", ratio, 2, "x")
        if n == 10**7 and night:
            target(
                f"{size} night <= 1x the baseline on the night",
                night["wall"] / base_night["wall"],
                1,
                "x",
            )
        if n >= 10**8:
            if night:
                target(
                    f"{size} night <= 25% of the full run",
                    100 * night["wall"] / full["wall"],
                    25,
                    "%",
                )
            peak = max(run["tree_rss"] for run in r["runs"].values())
            target(f"{size} peak RSS <= 6 GiB", peak / GIB, 6, " GiB")
    for size, n in (("10M", 10**7), ("100M", 10**8)):
        if not any(r["requested"] == n for r in results):
            out.append(f"| {size} targets | not run | - |")
    out += ["", "Generation and split details:", ""]
    if prepare:
        out.append(
            f"- `ltv prepare --force` (a dbt parse; `ltv run` parses only when the project or "
            "dbt's environment changed, not for a new shop folder) alone: "
            f"{prepare['wall']:.1f}s, peak RSS {_gib(prepare['tree_rss'])} GiB"
        )
    for r in results:
        g, s = r["generate"], r["split"]
        out.append(
            f"- {r['orders']:,} orders: generated in {g['wall']:.1f}s "
            f"(peak RSS {_gib(g['tree_rss'])} GiB); history in {s['files']} monthly files; "
            f"last day {s['day']} holds {s['orders']:,} orders; after both runs the "
            f"warehouse file is {r['sizes']['warehouse_gb']:.2f} GiB "
            f"and the work folder {r['sizes']['workdir_gb']:.2f} GiB"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[20_000, 1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ltv-bench"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline.md")
    parser.add_argument("--keep", action="store_true", help="keep each size's files")
    parser.add_argument(
        "--runs", nargs="+", choices=RUNS, default=list(RUNS), help="which runs (default both)"
    )
    parser.add_argument(
        "--baseline-runs",
        type=int,
        default=2,
        help="runs of the baseline after each ltv run; the quickest is compared (default 2; "
        "each is 6-7 min at 100M)",
    )
    parser.add_argument(
        "--end-date",
        help="the shop's last day, YYYY-MM-DD (the generator's default 2026-06-30 is a month's "
        "last day, whose night moves the LTV window; another day gives a night in the month)",
    )
    args = parser.parse_args()
    if args.end_date:
        date.fromisoformat(args.end_date)  # a bad date fails before anything is generated
    if args.baseline_runs < 1:
        parser.error("--baseline-runs must be at least 1")
    command = " ".join([".venv/bin/python", "bench/pipeline_bench.py", *sys.argv[1:]])
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    load0 = os.getloadavg()[0]
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.workdir).free / GIB
    # GiB per million orders: the work folder holds 0.4 after both runs (4.0 GiB at 10M, 39.5 at
    # 100M), and DuckDB's spill files (the baseline's; the pipeline's under a memory limit) need
    # more: a 100M run with a 4 GiB limit ran out of 68 GiB in its last baseline, which now
    # runs after the last good copy and the snapshots are deleted
    need = max(args.orders) / 1e6 * 0.6
    print(f"workdir {args.workdir}: {free:.0f} GiB free, about {need:.0f} GiB needed", flush=True)
    if need > free:
        raise SystemExit("not enough free disk for the largest size; use --workdir")
    # a forced parse: what one costs (the runs parse only if the project or dbt's environment
    # changed since; a new shop folder with the same warehouse file name does not count)
    prepare = measure([str(BIN / "ltv"), "prepare", "--force"], args.workdir / "prepare.log")
    prepare.pop("log")
    prepare.pop("rss_samples")
    results: list[dict] = []
    budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") * 0.7
    for n in sorted(args.orders):
        estimate = 0.0
        if results and results[-1]["pandas"]:
            prev = results[-1]
            estimate = prev["pandas"]["tree_rss"] * n / prev["orders"]
        results.append(
            bench_size(
                n,
                args.workdir,
                budget - estimate,
                tuple(args.runs),
                args.baseline_runs,
                args.end_date,
            )
        )
        if not args.keep:
            shutil.rmtree(args.workdir / str(n), ignore_errors=True)
        text = report(results, command, started, (load0, os.getloadavg()[0]), prepare)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=1, default=str))
    print(text)


if __name__ == "__main__":
    main()
