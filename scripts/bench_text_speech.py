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

Amazon runs the `experiment=amazon/<source>_<target>` presets (their protocol and budget); a method may
carry settings of its own, in one word (`"dann hidden_layers=2 trade_off=1"`), which also name its runs.

    python scripts/bench_text_speech.py amazon --pairs books:dvd kitchen:electronics --methods source_only dann \\
        --seeds 0 1 2 --data-root ../shared/data
    python scripts/bench_text_speech.py fsdd --methods source_only pseudo_label "dann trade_off=0.1" --seeds 0 \\
        --budget trainer.max_epochs=5 data.steps_per_epoch=40 --data-root ../shared/data
    python scripts/bench_text_speech.py fsdd --fsdd-pair speakers_a:speakers_b --methods source_only --seeds 0 ...
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
from lepton_cli.reporting.seeds import percent_mean_std

COLUMNS = ("target/acc", "selection/target/acc", "oracle/target/acc")
LETTER = {"books": "B", "dvd": "D", "electronics": "E", "kitchen": "K"}
# Ganin et al., JMLR 2016, Table 1, original features: target accuracy (DANN, shallow NN), from
# ../shared/BENCHMARK_ANCHORS.md.
PAPER = {"B→D": (.784, .790), "B→E": (.733, .747), "B→K": (.779, .778), "D→B": (.723, .720), "D→E": (.754, .732),
         "D→K": (.783, .778), "E→B": (.713, .709), "E→D": (.738, .733), "E→K": (.854, .854), "K→B": (.709, .708),
         "K→D": (.740, .739), "K→E": (.843, .841)}
UPPER_BOUND = "target supervised (upper bound, uses target labels)"
FSDD = ["augment=audio", "student=audio_cnn", "teacher=audio_cnn"]


def run_once(run_dir: Path, overrides: list[str]) -> dict:
    """The metrics of the run in `run_dir`: read when it finished before, else trained now."""
    from lepton_cli.config import compose_run
    from lepton_cli.train import run

    if (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        if (run_dir / "bench_cpu_s.txt").is_file():
            metrics["cpu_s"] = float((run_dir / "bench_cpu_s.txt").read_text())
        return metrics
    print(f"training {run_dir.name}: {' '.join(overrides)}", file=sys.stderr, flush=True)
    started = time.process_time()
    metrics = run(compose_run(overrides, run_dir))
    metrics["cpu_s"] = time.process_time() - started
    write_text_atomically(run_dir / "bench_cpu_s.txt", [f"{metrics['cpu_s']:.1f}"])
    return metrics


def method_settings(method: str) -> tuple[str, list[str]]:
    """`"dann hidden_layers=2 trade_off=1"` → a run-name part and the overrides of that method and settings."""
    name, *settings = method.split()
    return "_".join([name, *(setting.replace("=", "") for setting in settings)]), \
        [f"method={name}", *(f"method.{setting}" for setting in settings)]


def experiments(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(row label, run name, overrides) of every run but the seed."""
    common = [f"data.root={args.data_root}", "logger=csv", "report=false", *args.budget]
    found = []
    if args.suite == "amazon":  # the protocol is the preset's: conf/experiment/amazon/_shallow.yaml
        for pair in args.pairs:
            source, target = pair.split(":")
            label = f"{LETTER[source]}→{LETTER[target]}"
            for method in args.methods:
                name, settings = method_settings(method)
                found.append((f"{label} {method}", f"{source}_{target}_{name}",
                              [f"experiment=amazon/{source}_{target}", *settings, *common]))
    else:
        source, target = args.fsdd_pair.split(":")
        pair = [f"source=fsdd/{source}", f"target=fsdd/{target}", *FSDD, *common]
        for method in args.methods:
            name, settings = method_settings(method)
            found.append((method, f"{source}_{target}_{name}", [*pair, *settings]))
        if args.upper_bound:  # trained on labelled target recordings, tested on the target's test split
            found.append((UPPER_BOUND, f"{target}_{target}_source_only",
                          [f"source=fsdd/{target}", f"target=fsdd/{target}", *FSDD, *common, "method=source_only"]))
    return found


def gap_closed(runs: dict[int, dict], source_only: dict[int, dict], upper: dict[int, dict]) -> str:
    """`(method − source-only) / (upper bound − source-only)` of the last weights' target accuracy, per
    seed (the three runs of a seed share their data and initialisation), as mean ± std over the seeds that
    have all three: the share of the gap to target supervision a method closes without target labels."""
    seeds = sorted(set(runs) & set(source_only) & set(upper))
    shares = [(runs[s][COLUMNS[0]] - source_only[s][COLUMNS[0]]) / (upper[s][COLUMNS[0]] - source_only[s][COLUMNS[0]])
              for s in seeds]
    return percent_mean_std(shares) if shares else "–"


def average_rows(args: argparse.Namespace, results: dict[str, dict[int, dict]]) -> list[str]:
    """Per method, the mean over the pairs of each pair's seed mean, over the pairs that have every seed, and
    the paper's average over the same pairs."""
    rows = []
    for method in args.methods:
        labels = [f"{LETTER[s]}→{LETTER[t]}" for s, t in (pair.split(":") for pair in args.pairs)]
        complete = [label for label in labels if len(results.get(f"{label} {method}", [])) == len(args.seeds)]
        if not complete:
            continue
        cells = []
        for column in COLUMNS:
            means = [statistics.mean(r[column] for r in results[f"{label} {method}"].values()) for label in complete]
            cells.append(f"{100 * statistics.mean(means):.1f}")
        paper = [statistics.mean(PAPER[label][i] for label in complete) for i in (0, 1)]
        rows.append(f"| **average, {method}** ({len(complete)} pairs) | " + " | ".join(cells)
                    + f" | {len(args.seeds)} seeds | | {100 * paper[0]:.1f} / {100 * paper[1]:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=("amazon", "fsdd"))
    parser.add_argument("--pairs", nargs="*", default=["books:dvd"], help="amazon: source:target domain pairs")
    parser.add_argument("--fsdd-pair", default="clean:noisy", help="fsdd: source:target, e.g. speakers_a:speakers_b")
    parser.add_argument("--methods", nargs="*", default=["source_only", "dann"],
                        help='a method, or a method and its settings in one word: "dann hidden_layers=2 trade_off=1"')
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", nargs="*", default=[],
                        help="overrides of every run, e.g. the budget (fsdd; amazon's is its preset's)")
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
    results: dict[str, dict[int, dict]] = {}  # row label → seed → metrics
    with error_boundary():
        for seed in args.seeds:  # every row of a seed before the next seed: a cut-short run still fills the table
            for label, name, overrides in experiments(args):
                run_dir = (args.work_dir / args.suite / f"{name}_seed{seed}").resolve()
                if args.table_only and not (run_dir / "metrics.json").is_file():
                    continue
                try:
                    results.setdefault(label, {})[seed] = run_once(run_dir, [*overrides, f"seed={seed}"])
                except LeptonError as error:
                    if "interrupted" in str(error):  # SIGTERM/Ctrl-C: stop the benchmark, not only this run
                        raise
                    print(f"{name} seed {seed} failed: {error}", file=sys.stderr)

    header = ["", "target acc % (last weights)", "target acc % (validator's pick)",
              "target acc % (oracle pick, uses target labels)", "runs", "CPU-s per run"]
    if args.suite == "amazon":
        header.append("paper (DANN / shallow NN)")
    upper = results.get(UPPER_BOUND, {}) if args.suite == "fsdd" else {}
    if upper:
        header.append("gap closed % (last weights)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, _name, _overrides in experiments(args):
        by_seed = results.get(label, {})
        runs = list(by_seed.values())
        cells = [percent_mean_std([r[c] for r in runs if isinstance(r.get(c), float)]) for c in COLUMNS]
        cpu = [r["cpu_s"] for r in runs if "cpu_s" in r]
        row = [label, *cells, f"{len(runs)}/{len(args.seeds)}", f"{statistics.mean(cpu):.0f}" if cpu else "–"]
        if args.suite == "amazon":
            dann, shallow = PAPER[label.split()[0]]
            row.append(f"{100 * dann:.1f} / {100 * shallow:.1f}")
        if upper:
            row.append(gap_closed(by_seed, results.get("source_only", {}), upper) if label != UPPER_BOUND else "100")
        lines.append("| " + " | ".join(row) + " |")
    if args.suite == "amazon":
        lines += average_rows(args, results)
    table = "\n".join(lines) + "\n"
    command = "python scripts/bench_text_speech.py " + " ".join(sys.argv[1:])
    print(f"{command}\n\n{table}")
    if args.out:
        write_text_atomically(args.out, [f"    {command}", "", *lines])


if __name__ == "__main__":
    main()
