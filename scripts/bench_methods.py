#!/usr/bin/env python
"""Benchmark every adaptation method on one domain pair with the same budget and several seeds.

A thin use of `lepton sweep` (lepton_cli/sweep/): one sweep of method × seed in <work dir>/methods
and one of the upper bound (a model trained on the labelled target training split itself) in
<work dir>/upper_bound, so runs resume, fail alone and get a leaderboard as in any sweep. Then a
markdown table, mean ± std over seeds, with the selection behind each column said (docs/protocol.md,
rule 4): target accuracy of the last epoch's weights (the headline), of the epoch the run's
validator picked (`selection/target/acc`; the validator is `selection=`, no target labels) and of
the oracle's pick (`oracle/target/acc`, best epoch by target test accuracy: uses target labels);
target macro F1 of the last weights, source accuracy and wall time.

    python scripts/bench_methods.py --seeds 0 1 2 --out docs/bench_methods_digits.md
    python scripts/bench_methods.py --pair source=mnist target=usps data.root=DATA --methods source_only dann

Several work dirs (the methods split over processes): train each with its own --work-dir and
--methods, then tabulate them together with --no-train --work-dir A B ...: each run is taken from
the first dir where it finished (runs are found by the hash of their config, not by the dir).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from datetime import date
from pathlib import Path

from lepton_cli.config import compose_job, rewrite_overrides
from lepton_cli.errors import error_boundary
from lepton_cli.io import write_text_atomically
from lepton_cli.reporting.seeds import percent_mean_std
from lepton_cli.sweep.options import Options
from lepton_cli.sweep.records import Job
from lepton_cli.sweep.session import grid_command

ALL_METHODS = ["source_only", "finetune", "distill", "pseudo_label", "dann", "cdan", "mcc", "vada"]
UPPER_BOUND = "upper bound (labelled target)"
COLUMNS = ("target/acc", "selection/target/acc", "oracle/target/acc", "target/f1_macro", "source/acc")


def sweep(grid: list[str], directories: list[Path], train: bool) -> list[Job]:
    """The sweep's jobs, run in `directories[0]` (train=False: only looked up, in each directory;
    a run is taken from the first directory where it finished)."""
    merged: list[Job] = []
    for directory in directories:
        _, result = grid_command(Options(grid=rewrite_overrides(grid), sweep_dir=directory), execute=train, summary=False)
        if not merged:
            merged = result.jobs
            continue
        merged = [job if job.record.get("status") == "ok" or other.record.get("status") == "pending" else other
                  for job, other in zip(merged, result.jobs)]
    return merged


def validator(jobs: list[Job]) -> str:
    """The validator(s) named in the finished runs' metrics (`selection/name`); none finished: the configured one."""
    names = sorted({str(job.record["metrics"].get("selection/name")) for job in jobs if job.record.get("status") == "ok"})
    if not names and jobs:
        names = [str(compose_job(tuple(jobs[0].overrides)).selection.name)]
    return ", ".join(names)


def table_row(label: str, jobs: list[Job]) -> tuple[str, ...]:
    ok = [job.record["metrics"] for job in jobs if job.record.get("status") == "ok"]
    statuses = {job.record.get("status") for job in jobs}
    missing = "not run" if statuses <= {"pending"} else "still running" if "busy" in statuses else "failed"
    wall = f"{statistics.mean(m['wall_time_s'] for m in ok):.0f}" if ok else "–"
    cells = (percent_mean_std([m[key] for m in ok if key in m], missing if not ok else "not recorded",
                              one_run=" (one run, no std)") for key in COLUMNS)
    return (label, *cells, wall, f"{len(ok)}/{len(jobs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=ALL_METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--pair", nargs="*", default=[], help="overrides that choose the domain pair and data")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides applied to every run (budget, trainer)")
    parser.add_argument("--upper-bound", nargs="*", default=["source=digits", "target=digits"],
                        help="overrides of the labelled-target upper bound run (empty list: skip)")
    parser.add_argument("--work-dir", type=Path, nargs="+", default=[Path("runs/bench_methods")],
                        help="where the sweeps live; several only with --no-train (tabulated together)")
    parser.add_argument("--out", type=Path, help="write the markdown table here (also printed)")
    parser.add_argument("--no-train", action="store_true", help="only tabulate the runs already in --work-dir")
    args = parser.parse_args()
    if len(args.work_dir) > 1 and not args.no_train:
        parser.error("several --work-dir only with --no-train (train each with its own --work-dir)")

    seeds = f"seed={','.join(map(str, args.seeds))}"
    jobs = sweep([*args.pair, f"method={','.join(args.methods)}", *args.extra, seeds, "logger=csv"],
                 [directory / "methods" for directory in args.work_dir], not args.no_train)
    rows = [table_row(method, [job for job in jobs if f"method={method}" in job.overrides]) for method in args.methods]
    if args.upper_bound:
        upper = sweep([*args.pair, *args.upper_bound, "method=source_only", *args.extra, seeds, "logger=csv"],
                      [directory / "upper_bound" for directory in args.work_dir], not args.no_train)
        rows.append(table_row(UPPER_BOUND, upper))
        jobs = jobs + upper

    command = " ".join(["python scripts/bench_methods.py", *sys.argv[1:]])
    lines = [
        f"Command: `{command}`  ",
        (f"Machine: {platform.node() or 'unknown'}, {platform.processor() or platform.machine()}, "
         f"Python {platform.python_version()}; date {date.today().isoformat()}"),
        "",
        ("| method | target acc % (last weights) | target acc % (validator's pick: "
         f"{validator(jobs)}) | target acc % (oracle pick, uses target labels) | target macro F1 % (last) | "
         "source acc % | wall time s (per run) | runs ok |"),
        "|---|---|---|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
    ]
    print("\n".join(lines))
    if args.out:
        write_text_atomically(args.out, lines)


if __name__ == "__main__":
    with error_boundary():
        main()
