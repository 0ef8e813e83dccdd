"""`report.md` for a run directory or a sweep directory, and `lepton report DIR`.

A run's report embeds its pictures (report/*.png), the metrics of the last weights beside the
checkpoint the `selection=` validator picked and the oracle's pick, per-class accuracy and the
resolved config. Every link is relative, so the directory can be moved or zipped.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from lepton_cli.errors import LeptonError
from lepton_cli.reporting import plots

REPORT_HELP = """\
usage: lepton report DIR

Regenerate report.md and its pictures for a run directory (from its checkpoint, config.yaml and
metrics.json), or build one report for a sweep directory: the leaderboard and, per run, its
metrics, the model-selection choice and links to its pictures.
"""

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


def write_run_report(run_dir: str | Path) -> Path:
    """report.md of one finished run, from metrics.json, config.yaml and report/*.png."""
    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise LeptonError(f"{run_dir} has no metrics.json; report on a finished run directory")
    metrics = json.loads(metrics_file.read_text())
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
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(text))
    tmp.replace(path)
    return path


def regenerate_run(run_dir: Path, tsne_points: int = 1000) -> Path:
    """Pictures again from the run's files (last checkpoint + stored config), then report.md."""
    from lepton_cli.evaluate import build_classifier, checkpoint_classes, load_checkpoint, target_test_split

    directory = run_dir / "report"
    history_file = directory / "history.json"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = json.loads(history_file.read_text()) if history_file.is_file() else metrics.get("selection/history", [])
    if history:
        plots.learning_curves(history, directory / plots.CURVES)
    checkpoint_file = run_dir / "checkpoints" / "last.ckpt"
    if checkpoint_file.is_file():
        checkpoint = load_checkpoint(checkpoint_file)
        classes = checkpoint_classes(checkpoint)
        classifier, normalize = build_classifier(checkpoint)
        config = checkpoint["lepton_config"]
        splits = {}
        for domain in ("source", "target"):
            images, labels, alignment = target_test_split(config, config[domain], classes)
            # Labels index the shared classes; map them back to the checkpoint's (= the run's) classes.
            import torch

            index = torch.tensor([classes.index(c) for c in alignment.classes])
            splits[domain] = (images, index[labels])
        plots.model_pictures(classifier, normalize, splits, classes, directory, tsne_points)
    return write_run_report(run_dir)


def run_directories(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in sweep_dir.rglob("metrics.json") if p.parent != sweep_dir)


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
        metrics = json.loads((run / "metrics.json").read_text())
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
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(text))
    tmp.replace(path)
    return path


def report(directory: str | Path) -> Path:
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise LeptonError(f"{directory} is not a directory; pass a run directory (runs/<run>) or a sweep directory")
    if (directory / "metrics.json").is_file():
        return regenerate_run(directory)
    return write_sweep_report(directory)


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(REPORT_HELP, end="")
        return 0 if args else 2
    try:
        if len(args) != 1:
            raise LeptonError("lepton report takes one directory; e.g. lepton report runs/<run>")
        path = report(args[0])
    except LeptonError as error:
        if os.environ.get("LEPTON_DEBUG") == "1":
            raise
        print(f"lepton: error: {error}", file=sys.stderr)
        return error.exit_code
    print(f"wrote {path}")
    return 0
