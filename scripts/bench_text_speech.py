#!/usr/bin/env python
"""The text and speech tables of issue 18: Amazon reviews (the DANN paper's Table 1 setting) and
spoken digits (FSDD) clean → noisy, source-only against the adaptation methods.

All runs happen in this one process (the config composed as `lepton train` composes it, then
`lepton_cli.train.run`), so that torch, Lightning and Hydra are imported once, not per run: on a
shared 2-core machine that is most of a small run's cost. Each run writes its usual run directory
under --work-dir; a finished one (its metrics.json) is read, not trained again.

Per row, mean ± sample std over seeds of the target test accuracy of the last weights, of the
validator's pick (`selection=`, no target labels) and of the oracle's pick (uses target labels: an
upper bound on epoch choice, never a result).

    python scripts/bench_text_speech.py amazon --pairs books:dvd kitchen:electronics --seeds 0 1 2 \\
        --budget trainer.max_epochs=6 data.steps_per_epoch=50 method.lr=0.1 --data-root ../shared/data
    python scripts/bench_text_speech.py fsdd --methods source_only dann pseudo_label --seeds 0 \\
        --budget trainer.max_epochs=5 data.steps_per_epoch=40 --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from lepton_cli.errors import LeptonError, error_boundary
from lepton_cli.io import write_text_atomically

COLUMNS = ("target/acc", "selection/target/acc", "oracle/target/acc")
LETTER = {"books": "B", "dvd": "D", "electronics": "E", "kitchen": "K"}
# Ganin et al., JMLR 2016, Table 1, original features: target accuracy (DANN, shallow NN), from
# ../shared/BENCHMARK_ANCHORS.md.
PAPER = {"B→D": (.784, .790), "B→E": (.733, .747), "B→K": (.779, .778), "D→B": (.723, .720), "D→E": (.754, .732),
         "D→K": (.783, .778), "E→B": (.713, .709), "E→D": (.738, .733), "E→K": (.854, .854), "K→B": (.709, .708),
         "K→D": (.740, .739), "K→E": (.843, .841)}
AMAZON = ["augment=text", "student=text_mlp", "teacher=text_mlp", "method.bottleneck_dim=null"]
FSDD = ["augment=audio", "student=audio_cnn", "teacher=audio_cnn"]


def run_once(run_dir: Path, overrides: list[str]) -> dict:
    """The metrics of the run in `run_dir`: read when it finished before, else trained now."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.conftest
    from lepton_cli.train import run
    from tests.conftest import compose_config  # the in-process composition of the test suite

    if (run_dir / "metrics.json").is_file():
        return json.loads((run_dir / "metrics.json").read_text())
    print(f"training {run_dir.name}: {' '.join(overrides)}", file=sys.stderr, flush=True)
    started = time.process_time()
    metrics = run(compose_config(overrides, run_dir))
    metrics["cpu_s"] = time.process_time() - started
    write_text_atomically(run_dir / "bench_cpu_s.txt", [f"{metrics['cpu_s']:.1f}"])
    return metrics


def cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean = 100 * statistics.mean(values)
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


def experiments(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(row label, run name, overrides) of every run but the seed."""
    common = [f"data.root={args.data_root}", "logger=csv", "report=false", *args.budget]
    found = []
    if args.suite == "amazon":
        for pair in args.pairs:
            source, target = pair.split(":")
            label = f"{LETTER[source]}→{LETTER[target]}"
            for method in args.methods:
                found.append((f"{label} {method}", f"{source}_{target}_{method}",
                              [f"source=amazon/{source}", f"target=amazon/{target}", f"method={method}", *AMAZON, *common]))
    else:
        pair = ["source=fsdd/clean", "target=fsdd/noisy", *FSDD, *common]
        for method in args.methods:
            found.append((method, f"clean_noisy_{method}", [*pair, f"method={method}"]))
        if args.upper_bound:  # trained on labelled noisy (target) recordings, tested on noisy test
                found.append(("target supervised (upper bound, uses target labels)", "noisy_noisy_source_only",
                          ["source=fsdd/noisy", "target=fsdd/noisy", *FSDD, *common, "method=source_only"]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=("amazon", "fsdd"))
    parser.add_argument("--pairs", nargs="*", default=["books:dvd"], help="amazon: source:target domain pairs")
    parser.add_argument("--methods", nargs="*", default=["source_only", "dann"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", nargs="*", default=["trainer.max_epochs=10", "data.steps_per_epoch=50"],
                        help="overrides that set the training budget of every run")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench_text_speech"))
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--table-only", action="store_true", help="train nothing: the table of the finished runs")
    parser.add_argument("--upper-bound", action=argparse.BooleanOptionalAction, default=True,
                        help="fsdd: also train the target-supervised upper bound")
    args = parser.parse_args()

    import torch

    # One thread per run: on a shared machine OpenMP threads spin waiting for cores and burn CPU time.
    torch.set_num_threads(args.threads)
    results: dict[str, list[dict]] = {}
    with error_boundary():
        for seed in args.seeds:  # every row of a seed before the next seed: a cut-short run still fills the table
            for label, name, overrides in experiments(args):
                run_dir = (args.work_dir / args.suite / f"{name}_seed{seed}").resolve()
                if args.table_only and not (run_dir / "metrics.json").is_file():
                    continue
                try:
                    results.setdefault(label, []).append(run_once(run_dir, [*overrides, f"seed={seed}"]))
                except LeptonError as error:
                    if "interrupted" in str(error):  # SIGTERM/Ctrl-C: stop the benchmark, not only this run
                        raise
                    print(f"{name} seed {seed} failed: {error}", file=sys.stderr)

    header = ["", "target acc % (last weights)", "target acc % (validator's pick)",
              "target acc % (oracle pick, uses target labels)", "runs"]
    if args.suite == "amazon":
        header.append("paper (DANN / shallow NN)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, _name, _overrides in experiments(args):
        runs = results.get(label, [])
        cells = [cell([r[c] for r in runs if isinstance(r.get(c), float)]) for c in COLUMNS]
        row = [label, *cells, f"{len(runs)}/{len(args.seeds)}"]
        if args.suite == "amazon":
            dann, shallow = PAPER[label.split()[0]]
            row.append(f"{100 * dann:.1f} / {100 * shallow:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines) + "\n"
    command = "python scripts/bench_text_speech.py " + " ".join(sys.argv[1:])
    print(f"{command}\n\n{table}")
    if args.out:
        write_text_atomically(args.out, [f"    {command}", "", *lines])


if __name__ == "__main__":
    main()
