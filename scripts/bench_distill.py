#!/usr/bin/env python
"""The compression table of issue 17: a big teacher, a small student, and what each way of
distilling gives the student on the target domain.

Per seed, through `lepton_cli.api.train` (the very path of `lepton train`), in <work dir>/<row>_seed<s>:

  teacher, source only      method=source_only student=<teacher>
  teacher, adapted          method=<adapt> student=<teacher>                     (mcc by default)
  student alone             method=source_only student=<student>
  student, logit KD         method=distill teacher.run=<teacher, source only>
  student, KD + hints       ... method.feature_loss=hints method.teacher_layer=.. method.student_layer=..
  student, adapt→distil     method=distill teacher.run=<teacher, adapted>
  student, adapt→distil+mcc ... method.adapt=mcc

A finished run (its metrics.json) is read, not trained again, so an interrupted benchmark resumes;
the CPU seconds of each run (its process and children: `bench_cpu_s.txt` in its directory) are kept
beside it, since on a shared machine wall time measures the load. `--only` trains the rows that
matter first (every seed), the rest in a later call. Then a markdown table, mean ± sample std over seeds: parameters, target accuracy of the last
weights, of the validator's pick (`selection/target/acc`, no target labels) and of the oracle's
pick (`oracle/target/acc`: uses target labels, an upper bound on epoch choice, never a result).

    python scripts/bench_distill.py --seeds 0 1 2 --budget trainer.max_epochs=2 data.steps_per_epoch=100
    python scripts/bench_distill.py --pair experiment=digits/mnist_usps data.root=DATA selection=ims --seeds 0 1 2 \
        --only teacher_adapted student_alone student_adapt_distill
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
from pathlib import Path

from lepton_cli import api
from lepton_cli.errors import LeptonError, error_boundary
from lepton_cli.io import write_text_atomically
from lepton_cli.reporting.seeds import percent_mean_std

COLUMNS = ("target/acc", "selection/target/acc", "oracle/target/acc")


def rows(args: argparse.Namespace) -> list[tuple[str, str, list[str], str | None]]:
    """(name, label, overrides, the row whose run is the teacher) in training order."""
    hints = ["method.feature_loss=hints", f"method.teacher_layer={args.teacher_layer}",
             f"method.student_layer={args.student_layer}"]
    student = [f"student={args.student}"]
    return [
        ("teacher_source", f"teacher {args.teacher}, source only", ["method=source_only", f"student={args.teacher}"], None),
        ("teacher_adapted", f"teacher {args.teacher}, adapted ({args.adapt})", [f"method={args.adapt}", f"student={args.teacher}"], None),
        ("student_alone", f"student {args.student}, source only", ["method=source_only", *student], None),
        ("student_kd", "student, logit KD (teacher: source only)", ["method=distill", *student], "teacher_source"),
        ("student_kd_hints", "student, KD + hints (teacher: source only)", ["method=distill", *student, *hints], "teacher_source"),
        ("student_adapt_distill", f"student, adapt→distil (teacher: {args.adapt})", ["method=distill", *student], "teacher_adapted"),
        ("student_adapt_distill_mcc", f"student, adapt→distil + method.adapt=mcc (teacher: {args.adapt})",
         ["method=distill", *student, "method.adapt=mcc"], "teacher_adapted"),
    ]


def run_once(run_dir: Path, overrides: list[str]) -> dict:
    """The metrics of the run in `run_dir`: read when it finished before, else trained now."""
    from lepton_cli.reporting.markdown import read_metrics

    cpu_file = run_dir / "bench_cpu_s.txt"
    if (run_dir / "metrics.json").is_file():
        cpu_s = float(cpu_file.read_text()) if cpu_file.is_file() else None
        return {**read_metrics(run_dir / "metrics.json"), "run_dir": str(run_dir), "cpu_s": cpu_s}
    print(f"training {run_dir.name}: {' '.join(overrides)}", file=sys.stderr, flush=True)
    started = children_cpu_s()
    metrics = api.train([*overrides, f"hydra.run.dir={run_dir}"])
    metrics["cpu_s"] = children_cpu_s() - started
    write_text_atomically(cpu_file, [f"{metrics['cpu_s']:.1f}"])
    return metrics


def children_cpu_s() -> float:
    """User + system CPU seconds of the finished child processes (api.train's run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parameters(run_dir: str) -> int:
    model = api.load_model(run_dir)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pair", nargs="*", default=[], help="overrides of the experiment, e.g. source=mnist target=usps data.root=DIR")
    parser.add_argument("--budget", nargs="*", default=["trainer.max_epochs=2", "data.steps_per_epoch=100"],
                        help="overrides that set the training budget of every run")
    parser.add_argument("--teacher", default="resnet18")
    parser.add_argument("--student", default="small_cnn")
    parser.add_argument("--adapt", default="mcc", help="the method that adapts the teacher")
    parser.add_argument("--teacher-layer", default="layer3")
    parser.add_argument("--student-layer", default="features.3")
    parser.add_argument("--only", nargs="*", help="train only these rows (by name); the table reads what exists")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench_distill"))
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()

    common = [*args.pair, *args.budget, "report=false"]
    results: dict[str, list[dict]] = {}
    with error_boundary():
        for seed in args.seeds:
            done: dict[str, dict] = {}
            for name, _label, overrides, teacher in rows(args):
                run_dir = (args.work_dir / f"{name}_seed{seed}").resolve()
                if args.only and name not in args.only and not (run_dir / "metrics.json").is_file():
                    continue
                extra = []
                if teacher:
                    if teacher not in done:
                        continue  # its teacher did not run
                    extra = [f"teacher.run={done[teacher]['run_dir']}"]
                try:
                    metrics = run_once(run_dir, [*common, *overrides, *extra, f"seed={seed}"])
                except LeptonError as error:
                    print(f"{name} seed {seed} failed: {error}", file=sys.stderr)
                    continue
                metrics["parameters"] = parameters(metrics["run_dir"])
                done[name] = metrics
                results.setdefault(name, []).append(metrics)

    header = ["", "parameters", "target acc % (last weights)", "target acc % (validator's pick)",
              "target acc % (oracle pick, uses target labels)", "wall time s (per run)", "CPU s (per run)", "runs ok"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, label, _overrides, _teacher in rows(args):
        runs = results.get(name, [])
        params = f"{runs[0]['parameters'] / 1e6:.2f} M" if runs else "–"
        wall = f"{statistics.mean(r['wall_time_s'] for r in runs):.0f}" if runs else "–"
        cpu_s = [r["cpu_s"] for r in runs if r.get("cpu_s") is not None]
        cpu = f"{statistics.mean(cpu_s):.0f}" if cpu_s else "–"
        cells = [percent_mean_std([r[c] for r in runs if isinstance(r.get(c), float)], missing="not run") for c in COLUMNS]
        lines.append(f"| {label} | {params} | " + " | ".join(cells) + f" | {wall} | {cpu} | {len(runs)}/{len(args.seeds)} |")
    table = "\n".join(lines) + "\n"
    command = "python scripts/bench_distill.py " + " ".join(sys.argv[1:])
    print(f"{command}\n\n{table}")
    if args.out:
        write_text_atomically(args.out, [f"    {command}", "", *lines])


if __name__ == "__main__":
    main()
