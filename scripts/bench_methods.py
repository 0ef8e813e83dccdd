#!/usr/bin/env python
"""Benchmark every adaptation method on one domain pair with the same budget and several seeds.

A thin use of `lepton sweep` (lepton_cli/sweep/): one sweep of method × seed in <work dir>/methods
and one of the upper bound (a model trained on the labelled target training split itself) in
<work dir>/upper_bound, so runs resume, fail alone and get a leaderboard as in any sweep. Then a
markdown table of target accuracy and macro F1 of the last epoch's weights (mean ± std over seeds),
source accuracy and wall time.

    python scripts/bench_methods.py --seeds 0 1 2 --out docs/bench_methods_digits.md
    python scripts/bench_methods.py --pair source=mnist target=usps data.root=DATA --methods source_only dann
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from datetime import date
from pathlib import Path

from lepton_cli.config import rewrite_overrides
from lepton_cli.errors import error_boundary
from lepton_cli.io import write_text_atomically
from lepton_cli.sweep.options import Options
from lepton_cli.sweep.records import Job
from lepton_cli.sweep.session import grid_command

ALL_METHODS = ["source_only", "finetune", "distill", "pseudo_label", "dann", "cdan", "mcc", "vada"]
UPPER_BOUND = "upper bound (labelled target)"
COLUMNS = ("target/acc", "target/f1_macro", "source/acc")


def sweep(grid: list[str], directory: Path, train: bool) -> list[Job]:
    """The sweep's jobs, run (or, with train=False, only looked up) in `directory`."""
    _, result = grid_command(Options(grid=rewrite_overrides(grid), sweep_dir=directory), execute=train, summary=False)
    return result.jobs


def summarise(values: list[float], missing: str = "failed") -> str:
    if not values:
        return missing
    mean = 100 * statistics.mean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def table_row(label: str, jobs: list[Job]) -> tuple[str, ...]:
    ok = [job.record["metrics"] for job in jobs if job.record.get("status") == "ok"]
    missing = "not run" if all(job.record.get("status") == "pending" for job in jobs) else "failed"
    wall = f"{statistics.mean(m['wall_time_s'] for m in ok):.0f}" if ok else "–"
    return (label, *(summarise([m[key] for m in ok], missing) for key in COLUMNS), wall, f"{len(ok)}/{len(jobs)}")


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

    seeds = f"seed={','.join(map(str, args.seeds))}"
    jobs = sweep([*args.pair, f"method={','.join(args.methods)}", *args.extra, seeds, "logger=csv"],
                 args.work_dir / "methods", not args.no_train)
    rows = [table_row(method, [job for job in jobs if f"method={method}" in job.overrides]) for method in args.methods]
    if args.upper_bound:
        upper = sweep([*args.pair, *args.upper_bound, "method=source_only", *args.extra, seeds, "logger=csv"],
                      args.work_dir / "upper_bound", not args.no_train)
        rows.append(table_row(UPPER_BOUND, upper))

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
    print("\n".join(lines))
    if args.out:
        write_text_atomically(args.out, lines)


if __name__ == "__main__":
    with error_boundary():
        main()
