"""Benchmark scripts' table cells: a metric summarised over seeds."""

from __future__ import annotations

import statistics


def percent_mean_std(values: list[float], missing: str = "–", one_run: str = "") -> str:
    """Fractions as percent "mean ± sample std" to one decimal, for the benchmark scripts' tables;
    `missing` when there are none; one value is its mean followed by `one_run` (no std from one)."""
    if not values:
        return missing
    mean = 100 * statistics.mean(values)
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}{one_run}"
