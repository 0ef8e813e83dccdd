"""`report.md` for a run directory or a sweep directory.

A run's report embeds its pictures (report/*.png), the metrics of the last weights beside the
checkpoint the `selection=` validator picked and the oracle's pick, per-class accuracy and the
resolved config. Every link is relative, so the directory can be moved or zipped.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from lepton_cli.errors import LeptonError
from lepton_cli.io import write_text_atomically
from lepton_cli.reporting import plots

OLD_COPY = re.compile(r"\.old-\d+$")
PICTURES = ((plots.CURVES, "Learning curves"), (plots.CONFUSION, "Confusion matrix (target test)"),
            (plots.TSNE, "t-SNE of bottleneck features (source and target test)"))


def _pct(value) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "–"


def _link(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _selection_label(metrics: dict) -> str:
    return str(metrics.get("selection/name", "–"))


def selection_rows(metrics: dict) -> list[list[str]]:
    """Rows of: which weights, chosen how, epoch, target acc, target macro F1."""
    rows = [["last weights (tested)", "final epoch", str(metrics.get("selection/history", [{}])[-1].get("epoch", "–"))
             if metrics.get("selection/history") else "–", _pct(metrics.get("target/acc")), _pct(metrics.get("target/f1_macro"))]]
    if "selection/epoch" in metrics:
        score = metrics.get("selection/score")
        rows.append([f"selected by {_selection_label(metrics)}",
                     f"score {score:.4f} ({metrics.get('selection/mode', '')})" if isinstance(score, float) else "–",
                     str(metrics["selection/epoch"]), _pct(metrics.get("selection/target/acc")),
                     _pct(metrics.get("selection/target/f1_macro"))])
    if "oracle/epoch" in metrics:
        rows.append(["oracle (uses target labels)", "best target test accuracy", str(metrics["oracle/epoch"]),
                     _pct(metrics.get("oracle/target/acc")), _pct(metrics.get("oracle/target/f1_macro"))])
    return rows


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows), ""]


def read_metrics(path: Path) -> dict:
    """A run's metrics.json, or one line saying why it cannot be read."""
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise LeptonError(f"{path} is not readable JSON ({type(error).__name__}); it is not a metrics file written by "
                          "lepton train: rerun the run or remove the file") from None
    if not isinstance(metrics, dict):
        raise LeptonError(f"{path} holds a JSON {type(metrics).__name__}, not the object lepton train writes; "
                          "rerun the run or remove the file")
    history = metrics.get("selection/history")
    if history is not None and not (isinstance(history, list) and all(isinstance(e, dict) for e in history)):
        raise LeptonError(f"{path} has a selection/history that is not a list of epochs; it was not written by "
                          "lepton train: rerun the run or remove the file")
    return metrics


def write_run_report(run_dir: str | Path) -> Path:
    """report.md of one finished run, from metrics.json, config.yaml and report/*.png."""
    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise LeptonError(f"{run_dir} has no metrics.json; report on a finished run directory")
    metrics = read_metrics(metrics_file)
    title = f"{metrics.get('source', '?')} → {metrics.get('target', '?')}, {metrics.get('method', '?')} (seed {metrics.get('seed', '?')})"
    text = [f"# {title}", "", (f"Run directory: `{run_dir.name}` · {metrics.get('steps', '?')} steps · "
            f"{metrics.get('wall_time_s', '?')} s"), "", "## Results (test splits, %)", ""]
    domains = [d for d in ("target", "source") if f"{d}/acc" in metrics]
    text += _table(["metric", *(f"{d} test" for d in domains)],
                   [[label, *(_pct(metrics.get(f"{d}/{key}")) for d in domains)]
                    for key, label in (("acc", "accuracy"), ("recall_macro", "macro recall"), ("f1_macro", "macro F1"))])
    text += ["## Model selection without target labels", "",
             (f"Validator: **{_selection_label(metrics)}**. The last weights are the honest number; the validator "
             "picks an epoch without target labels, the oracle shows what target labels would have picked "
             "(what the unsupervised choice costs)."), ""]
    text += _table(["weights", "chosen by", "epoch", "target acc %", "target macro F1 %"], selection_rows(metrics))
    pictures = [(run_dir / "report" / name, caption) for name, caption in PICTURES]
    if any(path.is_file() for path, _ in pictures):
        text += ["## Pictures", ""]
        for path, caption in pictures:
            if path.is_file():
                text += [f"### {caption}", "", f"![{caption}]({_link(path, run_dir)})", ""]
    classes = metrics.get("classes") or []
    if classes and all(f"{d}/per_class_acc" in metrics for d in domains):
        text += ["## Per-class accuracy (%)", ""]
        text += _table(["class", *domains], [[name, *(_pct(metrics[f"{d}/per_class_acc"][i]) for d in domains)]
                                             for i, name in enumerate(classes)])
    config = run_dir / "config.yaml"
    if config.is_file():
        text += ["## Resolved config", "", f"[config.yaml]({_link(config, run_dir)})", "", "```yaml",
                 config.read_text().rstrip(), "```", ""]
    path = run_dir / "report.md"
    write_text_atomically(path, text)
    return path


def run_directories(sweep_dir: Path) -> list[Path]:
    """The finished runs of a sweep, without the `.old-N` copies that `--force` moved aside."""
    return sorted(p.parent for p in sweep_dir.rglob("metrics.json")
                  if p.parent != sweep_dir and not any(OLD_COPY.search(part) for part in p.relative_to(sweep_dir).parts))


def write_sweep_report(sweep_dir: str | Path) -> Path:
    """One report.md for a sweep: its leaderboard (leaderboard.md/.png when present) and, per run,
    the metrics, the validator's and the oracle's choice and links to the run's pictures."""
    sweep_dir = Path(sweep_dir)
    runs = run_directories(sweep_dir)
    if not runs:
        raise LeptonError(f"{sweep_dir} holds no run directories with metrics.json; pass a run or sweep directory")
    text = [f"# Sweep report: {sweep_dir.name}", "", f"{len(runs)} finished runs.", ""]
    leaderboard = sweep_dir / "leaderboard.md"
    if leaderboard.is_file():
        lines = leaderboard.read_text().splitlines()
        body = lines[1:] if lines and lines[0].startswith("# ") else lines
        text += ["## Leaderboard", "", f"[leaderboard.md]({_link(leaderboard, sweep_dir)})", "", *body, ""]
    chart = sweep_dir / "leaderboard.png"
    if chart.is_file():
        text += [f"![leaderboard]({_link(chart, sweep_dir)})", ""]
    rows = []
    for run in runs:
        metrics = read_metrics(run / "metrics.json")
        report = run / "report.md"
        name = f"[{_link(run, sweep_dir)}]({_link(report, sweep_dir)})" if report.is_file() else _link(run, sweep_dir)
        links = " ".join(f"[{label}]({_link(run / 'report' / file, sweep_dir)})"
                         for file, label in ((plots.CURVES, "curves"), (plots.CONFUSION, "confusion"), (plots.TSNE, "t-SNE"))
                         if (run / "report" / file).is_file())
        rows.append([name, str(metrics.get("method", "–")), str(metrics.get("seed", "–")), _pct(metrics.get("target/acc")),
                     _selection_label(metrics), str(metrics.get("selection/epoch", "–")),
                     _pct(metrics.get("selection/target/acc")), str(metrics.get("oracle/epoch", "–")),
                     _pct(metrics.get("oracle/target/acc")), links or "–"])
    text += ["## Runs", "", ("Target accuracy (%) of the last weights, of the epoch the validator picked, and of the "
             "epoch the oracle (uses target labels) picked."), ""]
    text += _table(["run", "method", "seed", "target acc (last)", "validator", "epoch", "target acc (selected)",
                    "oracle epoch", "target acc (oracle)", "pictures"], rows)
    path = sweep_dir / "report.md"
    write_text_atomically(path, text)
    return path
