#!/usr/bin/env python
"""Lepton's training throughput against the hand-written loop (`scripts/handwritten_loop.py`).

Lepton's images/s is measured without its start-up and evaluation: `lepton train` runs twice, with
`data.steps_per_epoch` = SHORT and LONG (one epoch, the same evaluation), and the extra steps are
divided by the extra wall time. Lepton runs without augmentation (`augment.weak.translate=0`), as the
hand-written loop has none. Also times `lepton --help` and `lepton list`.

    python scripts/bench_overhead.py --methods source_only dann --short 50 --long 350
    python scripts/bench_overhead.py --trainer gpu     # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-2000:]}")
    return time.perf_counter() - started, result.stdout


def lepton_images_per_s(method: str, trainer: str, batch: int, short: int, long: int) -> float:
    times = []
    for steps in (short, long):
        with tempfile.TemporaryDirectory() as run_dir:
            seconds, _ = timed([sys.executable, "-m", "lepton_cli.train", f"method={method}", f"trainer={trainer}",
                                "trainer.max_epochs=1", f"data.steps_per_epoch={steps}", f"data.batch_size={batch}",
                                "logger=none", "report=false", f"hydra.run.dir={run_dir}/run",
                                # the hand-written loop does not augment: switch off the default weak
                                # view's random translation so both do the same work per step
                                "augment.weak.translate=0"])
            times.append(seconds)
    images_per_step = batch * (1 if method == "source_only" else 2)
    return (long - short) * images_per_step / (times[1] - times[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["source_only", "dann"])
    parser.add_argument("--trainer", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--short", type=int, default=50)
    parser.add_argument("--long", type=int, default=350)
    args = parser.parse_args()

    device = "cuda" if args.trainer in ("gpu", "ddp") else "cpu"
    print(f"Command: `python scripts/bench_overhead.py {' '.join(sys.argv[1:])}`  ")
    print(f"Machine: {platform.processor() or platform.machine()}, device {device}; date {date.today().isoformat()}\n")
    print("| method | hand-written loop images/s | lepton train images/s | ratio |")
    print("|---|---|---|---|")
    for method in args.methods:
        _, out = timed([sys.executable, "scripts/handwritten_loop.py", "--method", method, "--steps", str(args.long - args.short),
                        "--batch-size", str(args.batch_size), "--device", device])
        loop = json.loads(out.strip().splitlines()[-1])["images_per_s"]
        lepton = lepton_images_per_s(method, args.trainer, args.batch_size, args.short, args.long)
        print(f"| {method} | {loop:,.0f} | {lepton:,.0f} | {lepton / loop:.2f}× |", flush=True)
    for command in (["--help"], ["list"]):
        seconds = min(timed([sys.executable, "-m", "lepton_cli", *command])[0] for _ in range(3))
        print(f"\n`lepton {' '.join(command)}`: {seconds:.2f} s (best of 3)", end="")
    print()


if __name__ == "__main__":
    main()
