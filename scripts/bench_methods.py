#!/usr/bin/env python
"""Benchmark every adaptation method on one domain pair with the same budget and several seeds.

Runs `lepton train` once per (method, seed) in a subprocess, plus the upper bound (a model trained
on the labelled target training split itself), and writes a markdown table of target accuracy and
macro F1 (mean ± std over seeds), source accuracy and wall time.

    python scripts/bench_methods.py --seeds 0 1 2 --out docs/bench_methods_digits.md
    python scripts/bench_methods.py --pair source=mnist target=usps data.root=DATA --methods source_only dann
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ALL_METHODS = ["source_only", "finetune", "distill", "pseudo_label", "dann", "cdan", "mcc", "vada"]


def run_one(overrides: list[str], run_dir: Path, train: bool = True) -> dict:
    if not (run_dir / "metrics.json").exists():
        if not train:
            return {"error": "not run", "wall_time_s": 0.0}
        command = [sys.executable, "-m", "lepton_cli.train", *overrides, f"hydra.run.dir={run_dir}"]
        started = time.time()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            return {"error": (result.stderr.strip().splitlines() or ["?"])[-1], "wall_time_s": time.time() - started}
    return json.loads((run_dir / "metrics.json").read_text())


def summarise(values: list[float], missing: str = "failed") -> str:
    if not values:
        return missing
    mean = 100 * statistics.mean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=ALL_METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--pair", nargs="*", default=[], help="overrides that choose the domain pair and data")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides applied to every run (budget, trainer)")
    parser.add_argument("--upper-bound", nargs="*", default=["source=digits", "target=digits"],
                        help="overrides of the labelled-target upper bound run (empty list: skip)")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench_methods"))
    parser.add_argument("--out", type=Path, help="write the markdown table here (also printed)")
    parser.add_argument("--no-train", action="store_true", help="only tabulate the runs already in --work-dir")
    args = parser.parse_args()

    rows = []
    plans = [(m, [*args.pair, f"method={m}"]) for m in args.methods]
    if args.upper_bound:
        plans.append(("upper bound (labelled target)", [*args.pair, *args.upper_bound, "method=source_only"]))
    for label, overrides in plans:
        results = []
        for seed in args.seeds:
            run_dir = args.work_dir / label.split(" ")[0].replace("(", "") / f"seed{seed}"
            metrics = run_one([*overrides, *args.extra, f"seed={seed}", "logger=csv"], run_dir, train=not args.no_train)
            results.append(metrics)
            status = metrics.get("error") or f"target acc {metrics['target/acc']:.4f}"
            print(f"{label:>32}  seed {seed}: {status}", flush=True)
        ok = [r for r in results if "error" not in r]
        missing = "not run" if all(r.get("error") == "not run" for r in results) else "failed"
        rows.append((label, *(summarise([r[key] for r in ok], missing) for key in ("target/acc", "target/f1_macro", "source/acc")),
                     f"{statistics.mean(r['wall_time_s'] for r in ok):.0f}" if ok else "–", f"{len(ok)}/{len(results)}"))

    command = " ".join(["python scripts/bench_methods.py", *sys.argv[1:]])
    lines = [
        f"Command: `{command}`  ",
        (f"Machine: {platform.node() or 'unknown'}, {platform.processor() or platform.machine()}, "
         f"Python {platform.python_version()}; date {date.today().isoformat()}"),
        "",
        "| method | target acc % | target macro F1 % | source acc % | wall time s (per run) | runs ok |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
