"""The leaderboard's chart, `leaderboard.png`: the ranked column as horizontal bars, best on top.
Split from leaderboard.py, which writes it with the tables (matplotlib is imported only to draw)."""

from __future__ import annotations

import math
from pathlib import Path

from lepton_cli.io import write_buffer_atomically
from lepton_cli.reporting.leaderboard import DEFAULT_RANKING, Ranking, Row, column_label, is_percent, ranking


def write_bar_chart(rows: list[Row], path: Path, rank_by: str | Ranking = DEFAULT_RANKING) -> None:
    """Horizontal bars of the ranked column (mean, with the sample std as error bar), best on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rank = ranking(rank_by)
    metric = rank.display_key
    finished = [r for r in rows if not math.isnan(r.mean(metric))]
    scale = 100.0 if is_percent(metric) else 1.0
    labels = [" ".join(f"{k}={v}" for k, v in r.settings.items()) or "(all)" for r in finished]
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.4 * max(len(finished), 1)))
    if finished:
        means = [scale * r.mean(metric) for r in finished]
        errors = [0.0 if math.isnan(r.std(metric)) else scale * r.std(metric) for r in finished]
        axes.barh(range(len(finished)), means, xerr=errors, color="tab:blue", capsize=3)
        axes.set_yticks(range(len(finished)), labels)
        axes.invert_yaxis()
    else:
        axes.text(0.5, 0.5, "no finished runs yet", ha="center", va="center", transform=axes.transAxes)
        axes.set_yticks([])
    axes.set_xlabel(column_label(metric, rows) + " (mean ± std over seeds)")
    axes.set_title(f"ranked by {rank.label(rows)}", fontsize=9)
    figure.tight_layout()
    write_buffer_atomically(path, lambda buffer: figure.savefig(buffer, format="png", dpi=100))
    plt.close(figure)
