"""`lepton report DIR`: rebuild a run's pictures and report.md from its files, or write one report
for a sweep directory."""

from __future__ import annotations

import json
from pathlib import Path

from lepton_cli.errors import LeptonError, one_line_errors
from lepton_cli.reporting import plots
from lepton_cli.reporting.markdown import read_metrics, write_run_report, write_sweep_report

REPORT_HELP = """\
usage: lepton report DIR

Regenerate report.md and its pictures for a run directory (from its checkpoint, config.yaml and
metrics.json), or build one report for a sweep directory: the leaderboard and, per run, its
metrics, the model-selection choice and links to its pictures.
"""


def regenerate_run(run_dir: Path, tsne_points: int = 1000) -> Path:
    """Pictures again from the run's files (last checkpoint + stored config), then report.md."""
    import torch

    from lepton_cli.builders.saved_model import (
        build_classifier,
        checkpoint_classes,
        evaluation_split,
        load_checkpoint,
        local_config,
    )

    directory = run_dir / "report"
    if directory.is_symlink():  # a shared run directory must not make the report write elsewhere
        raise LeptonError(f"{directory} is a symbolic link; Lepton writes a run's pictures only inside the run "
                          "directory: remove the link and run lepton report again")
    history_file = directory / "history.json"
    metrics = read_metrics(run_dir / "metrics.json")
    history = metrics.get("selection/history", [])
    if history_file.is_file():
        try:
            history = json.loads(history_file.read_text())
        except ValueError:
            pass  # a damaged history.json: the copy in metrics.json serves
    if history:
        plots.learning_curves(history, directory / plots.CURVES)
    checkpoint_file = run_dir / "checkpoints" / "last.ckpt"
    if checkpoint_file.is_file():
        checkpoint = load_checkpoint(checkpoint_file)
        classes = checkpoint_classes(checkpoint)
        classifier, normalize = build_classifier(checkpoint)
        config = local_config(checkpoint)
        splits = {}
        for domain in ("source", "target"):
            images, labels, alignment = evaluation_split(config, config.get(domain), classes, domain)
            # Labels index the shared classes; map them back to the checkpoint's (= the run's) classes.
            index = torch.tensor([classes.index(c) for c in alignment.classes])
            splits[domain] = (images, index[labels])
        plots.model_pictures(classifier, normalize, splits, classes, directory, tsne_points)
    return write_run_report(run_dir)


def report(directory: str | Path) -> Path:
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise LeptonError(f"{directory} is not a directory; pass a run directory (runs/<run>) or a sweep directory")
    if (directory / "metrics.json").is_file():
        return regenerate_run(directory)
    return write_sweep_report(directory)


@one_line_errors
def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(REPORT_HELP, end="")
        return 0 if args else 2
    if len(args) != 1:
        raise LeptonError("lepton report takes one directory; e.g. lepton report runs/<run>")
    path = report(args[0])
    print(f"wrote {path}")
    return 0
