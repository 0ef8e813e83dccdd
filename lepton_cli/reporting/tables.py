"""Rich tables of a run's metrics."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

SUMMARY_METRICS = (("acc", "accuracy"), ("recall_macro", "macro recall"), ("f1_macro", "macro F1"))


def metrics_table(metrics: dict, class_names: list[str], title: str = "Results") -> Table:
    """Accuracy, macro recall and macro F1 per domain, then per-class accuracy."""
    domains = [d for d in ("target", "source") if f"{d}/acc" in metrics]
    table = Table(title=title)
    table.add_column("metric")
    for domain in domains:
        table.add_column(f"{domain} test", justify="right")
    for key, label in SUMMARY_METRICS:
        table.add_row(label, *(f"{100 * metrics[f'{d}/{key}']:.2f}%" for d in domains))
    for index, name in enumerate(class_names):
        table.add_row(f"  class {name}", *(f"{100 * metrics[f'{d}/per_class_acc'][index]:.1f}%" for d in domains),
                      style="dim")
    return table


def print_metrics(metrics: dict, class_names: list[str], title: str = "Results") -> None:
    Console().print(metrics_table(metrics, class_names, title))
