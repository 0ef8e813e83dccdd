#!/usr/bin/env python
"""Lepton's training throughput against the hand-written loops of `scripts/handwritten_loop.py`.

For each method, in one process and interleaved (hand-written, Lepton, hand-written, Lepton, …, so
that a shared machine's load hits both alike), it times:

- the hand-written loop: `--steps` steps after `--warmup`;
- Lepton's training path: `lepton_cli.train.run` of the composed config (what `lepton train` runs,
  with its configured callbacks, loggers and progress bar) for one epoch of `--warmup + --steps`
  steps; a callback times the last `--steps` steps, so start-up, data loading and evaluation are
  left out on both sides.

Both augment (the weak view, and the strong one where the method uses it), both use batch
`--batch-size` per domain. Prints a Markdown table (median over `--repeats` of each side and of
the per-repeat ratio) and, with `--json FILE`, writes the rows as JSON.

    python scripts/bench_overhead.py --methods source_only dann --steps 150 --repeats 3
    python scripts/bench_overhead.py --trainer gpu --precision bf16-mixed --extra trainer.compile=reduce-overhead
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pytorch_lightning as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))  # handwritten_loop, beside this script
from handwritten_loop import METHODS, images_per_step, run_loop

# The settings the two sides could otherwise differ in: finetune from scratch (the same step as from
# a source-trained model, without training one first); distill's teacher trained one epoch (cached).
METHOD_OVERRIDES = {"finetune": ["method.init=scratch"], "distill": ["method.teacher_epochs=1"]}


class StepTimer(pl.Callback):
    """Times training steps `warmup` to the last of the epoch (the device synchronised at both ends);
    the result is left in `StepTimer.seconds` (the config instantiates the callback, so the bench
    reads it from the class)."""

    seconds: float | None = None
    clock = time.perf_counter

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.started: float | None = None
        StepTimer.seconds = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            _synchronize(pl_module.device)
            self.started = StepTimer.clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx == trainer.num_training_batches - 1 and self.started is not None:
            _synchronize(pl_module.device)
            StepTimer.seconds = StepTimer.clock() - self.started


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compose(overrides: list[str], run_dir: Path):
    """The config `lepton train OVERRIDES hydra.run.dir=RUN_DIR` runs, with Hydra's runtime set up."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from lepton_cli.config import conf_dir, rewrite_overrides

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=rewrite_overrides(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = cfg.hydra.run.dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def lepton_images_per_s(method: str, args, extra: list[str]) -> float:
    from omegaconf import open_dict

    from lepton_cli.train import run

    with tempfile.TemporaryDirectory() as work:
        cfg = compose([f"method={method}", f"trainer={args.trainer}", "trainer.max_epochs=1", "report=false",
                       f"data.steps_per_epoch={args.warmup + args.steps}", f"data.batch_size={args.batch_size}",
                       *METHOD_OVERRIDES.get(method, []), *args.lepton_data, *extra], Path(work) / "run")
        with open_dict(cfg):
            cfg.callbacks["step_timer"] = {"_target_": f"{__name__}.StepTimer", "warmup": args.warmup}
        with contextlib.redirect_stdout(io.StringIO()):  # the run's metrics table: not this script's output
            run(cfg)
    if StepTimer.seconds is None:
        raise SystemExit(f"lepton train {method}: the step timer did not fire")
    return args.steps * images_per_step(method, args.batch_size) / StepTimer.seconds


def handwritten_images_per_s(method: str, args) -> float:
    return run_loop(method, args.steps, args.warmup, args.batch_size, args.device, args.precision, args.source,
                    args.target, args.data_root, args.cache_dir, args.channels, clock=StepTimer.clock)


def measure(method: str, args) -> dict:
    """`--repeats` interleaved pairs (hand-written, then Lepton); medians of each and of the ratios."""
    loop, lepton = [], []
    for _ in range(args.repeats):
        loop.append(handwritten_images_per_s(method, args))
        lepton.append(lepton_images_per_s(method, args, args.extra))
    ratios = [b / a for a, b in zip(loop, lepton)]
    return {"method": method, "trainer": args.trainer, "clock": args.clock, "threads": args.threads, "precision": args.precision, "channels": args.channels, "extra": args.extra,
            "batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats,
            "handwritten_images_per_s": [round(v, 3) for v in loop], "lepton_images_per_s": [round(v, 3) for v in lepton],
            "handwritten_median": round(statistics.median(loop), 3), "lepton_median": round(statistics.median(lepton), 3),
            "ratio_median": round(statistics.median(ratios), 4)}


def markdown_row(row: dict) -> str:
    setting = " ".join([row["precision"], *([f"{row['channels']} channels"] if row["channels"] != 1 else []), *row["extra"]])
    return (f"| {row['method']} | {setting} | {row['handwritten_median']:,.0f} | {row['lepton_median']:,.0f} | "
            f"{row['ratio_median']:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--trainer", default="cpu", help="trainer= preset of the Lepton side (cpu, gpu)")
    parser.add_argument("--precision", default=None, help="32-true or bf16-mixed (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=150, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved hand-written/Lepton pairs per method")
    parser.add_argument("--source", default="synth_digits")
    parser.add_argument("--target", default="digits")
    parser.add_argument("--channels", type=int, default=1, help="image channels (3: colour input, for channels_last)")
    parser.add_argument("--data-root", default=None, help="data.root, for file data sets (mnist, usps)")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for the Lepton side only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's); 1 is steadier on a loaded machine")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this process's CPU time instead of wall time; with --threads 1 it measures the work "
                             "done, nearly blind to other jobs on a loaded machine")
    parser.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = parser.parse_args()
    from lepton_cli.io import write_json_atomically

    args.device = "cuda" if args.trainer in ("gpu", "ddp") else "cpu"
    args.precision = args.precision or ("bf16-mixed" if args.trainer == "gpu" else "32-true")
    args.cache_dir = os.environ.get("LEPTON_CACHE", str(Path("~/.cache/lepton/cache").expanduser()))
    args.lepton_data = [f"source={args.source}", f"target={args.target}", f"trainer.precision={args.precision}",
                        f"data.channels={args.channels}",
                        *([f"data.root={args.data_root}"] if args.data_root else [])]
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        StepTimer.clock = staticmethod(time.process_time)
    print(f"Command: `python scripts/bench_overhead.py {' '.join(sys.argv[1:])}`  ")
    gpu = f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores{gpu}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; date {date.today().isoformat()}; load average {os.getloadavg()[0]:.1f}\n")
    print("| method | setting | hand-written loop images/s | lepton train images/s | ratio (median of pairs) |")
    print("|---|---|---|---|---|")
    rows = []
    for method in args.methods:
        rows.append(measure(method, args))
        print(markdown_row(rows[-1]), flush=True)
    if args.json:
        write_json_atomically(Path(args.json), rows)


if __name__ == "__main__":
    main()
