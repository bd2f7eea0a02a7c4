"""The fixed cost of a run, two source trees back to back: full `ltv run`s of the `make run`
sample shop (5,000 customers, about 11,800 orders), alternating between the trees, each into a
fresh warehouse at the same path (so dbt keeps its parse, as on a shop's second night).

Usage: .venv/bin/python bench/fixed_cost_ab.py --src A=/path/a/src --src B=/path/b/src \\
    --runs 5 --workdir /tmp/ab --out bench/results/fixed_cost_ab.md

Each tree's dbt project must be parsed first (`python -m ltv_pipeline.cli prepare` with that
tree on PYTHONPATH). Runs go through `python -m ltv_pipeline.cli run`, which every tree has.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PYTHON = Path(sys.executable)


def _cli(src: Path, args: list[str], env: dict[str, str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(
            [str(PYTHON), "-m", "ltv_pipeline.cli", *args],
            env={**env, "PYTHONPATH": str(src)},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            cwd=src.parent,
        )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", action="append", required=True, help="NAME=path/to/src")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.src)
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    raw = args.workdir / "raw"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LTV_", "DAGSTER_"))}
    first = Path(next(iter(trees.values())))
    _cli(first, ["generate", "--out", str(raw)], base, args.workdir / "generate.log")
    walls: dict[str, list[float]] = {name: [] for name in trees}
    for i in range(args.runs):
        for name, src in trees.items():
            root = args.workdir / name
            shutil.rmtree(root, ignore_errors=True)
            (root / "dagster_home").mkdir(parents=True)
            shutil.copytree(raw, root / "raw")
            env = {
                **base,
                "LTV_DATA_DIR": str(root),
                "LTV_DUCKDB_PATH": str(root / "warehouse.duckdb"),
                "DAGSTER_HOME": str(root / "dagster_home"),
            }
            wall = _cli(Path(src), ["run"], env, root / f"run_{i}.log")
            walls[name].append(wall)
            print(f"{name} run {i + 1}: {wall:.2f} s", flush=True)
    lines = [
        "# Fixed cost of `ltv run`, source trees back to back (issue 18)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} (UTC)",
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        f"- 1-min load average at the end: {os.getloadavg()[0]:.2f}",
        "- shop: the `make run` sample (`ltv generate` defaults), a full run into a fresh "
        "warehouse at the same path each time, the trees alternating",
        "",
        "| tree | src | runs (s) | median s |",
        "| --- | --- | --- | ---: |",
    ]
    for name, src in trees.items():
        runs = ", ".join(f"{w:.2f}" for w in walls[name])
        lines.append(f"| {name} | `{src}` | {runs} | {statistics.median(walls[name]):.2f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
