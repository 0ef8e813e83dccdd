"""The leaderboard of a sweep: one row per configuration, seeds grouped, best first.

Written as `leaderboard.csv` (raw fractions), `leaderboard.md` and `leaderboard.png` (percentages),
and printed as a rich table. Statistics over the seeds of a configuration use the sample standard
deviation (ddof=1); with a single finished run the std is undefined: empty in the CSV, "–" in the
markdown and terminal tables.

A run record is a dict: `overrides` (list of `key=value`), `group` (the overrides minus `seed`,
hashable), `status` ("ok", "failed" or "pending"), `metrics` (metrics.json or None), `error` (the
last error line of a failed run), `run_dir`, `wall_time_s`.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from lepton_cli.config import GROUP_ALIASES

DISPLAY_KEY = {alias: word for word, alias in GROUP_ALIASES.items()}
SEED_KEYS = ("seed", "+seed")


def display_key(key: str) -> str:
    return DISPLAY_KEY.get(key, key)


def split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key, value


@dataclass
class Row:
    """One configuration of the sweep and the statistics over its finished seeds."""

    settings: dict[str, str]
    values: dict[str, list[float]] = field(default_factory=dict)  # metric key → one value per finished run
    wall_times: list[float] = field(default_factory=list)
    failed: int = 0
    pending: int = 0
    error: str = ""
    run_dirs: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.wall_times)

    def mean(self, key: str) -> float:
        values = self.values.get(key, [])
        return statistics.fmean(values) if values else math.nan

    def std(self, key: str) -> float:
        values = self.values.get(key, [])
        return statistics.stdev(values) if len(values) >= 2 else math.nan  # sample std, ddof=1

    @property
    def status(self) -> str:
        parts = [f"{self.n} ok"] + [f"{count} {word}" for count, word in ((self.failed, "failed"), (self.pending, "pending")) if count]
        return ", ".join(parts)


METRICS = ("target/acc", "target/f1_macro", "source/acc")


def build_leaderboard(records: list[dict], varying_keys: list[str], rank_by: str = "target/acc") -> list[Row]:
    """Group the runs by configuration and sort best first by `rank_by` (a metrics.json key; higher
    is better, or lower with a leading '-'). Configurations without a finished run go last."""
    metric, sign = rank_metric(rank_by)
    rows: dict[tuple, Row] = {}
    for record in records:
        settings = dict(split_override(o) for o in record["overrides"])
        row = rows.setdefault(tuple(record["group"]), Row({display_key(k): settings.get(k, "") for k in varying_keys}))
        row.run_dirs.append(str(record.get("run_dir", "")))
        if record["status"] == "ok":
            metrics = record["metrics"]
            for key in {*METRICS, metric}:
                if isinstance(metrics.get(key), (int, float)):
                    row.values.setdefault(key, []).append(float(metrics[key]))
            row.wall_times.append(float(record.get("wall_time_s") or metrics.get("wall_time_s") or 0.0))
        elif record["status"] == "failed":
            row.failed += 1
            row.error = record.get("error") or row.error
        else:
            row.pending += 1

    def order(row: Row):
        value = row.mean(metric)
        return (math.isnan(value), -sign * value if not math.isnan(value) else 0.0, row.pending > 0 and not row.failed)

    return sorted(rows.values(), key=order)


def rank_metric(rank_by: str) -> tuple[str, int]:
    return (rank_by[1:], -1) if rank_by.startswith("-") else (rank_by, 1)


def _columns(rank_by: str) -> list[str]:
    metric, _ = rank_metric(rank_by)
    return list(METRICS) if metric in METRICS else [metric, *METRICS]


def _percent(key: str) -> bool:
    return key.endswith(("/acc", "/f1_macro", "/recall_macro"))


def _format(row: Row, key: str, with_std: bool = True) -> str:
    mean, std = row.mean(key), row.std(key)
    if math.isnan(mean):
        return "–"
    scale, digits = (100.0, 2) if _percent(key) else (1.0, 4)
    text = f"{scale * mean:.{digits}f}"
    if with_std:
        text += " ± " + ("–" if math.isnan(std) else f"{scale * std:.{digits}f}")
    return text


def _label(key: str) -> str:
    return {"target/acc": "target acc %", "target/f1_macro": "target macro F1 %", "source/acc": "source acc %"}.get(key, key)


def table_cells(rows: list[Row], rank_by: str) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells shared by the markdown and terminal tables."""
    keys = list(rows[0].settings) if rows else []
    metric_keys = _columns(rank_by)
    header = [*(keys or ["config"]), *(_label(k) for k in metric_keys if k != "source/acc"), "n", "source acc %",
              "wall time / run", "runs", "error"]
    body = []
    for row in rows:
        cells = [*(row.settings[k] for k in keys)] if keys else ["(all)"]
        cells += [_format(row, k) for k in metric_keys if k != "source/acc"]
        wall = f"{statistics.fmean(row.wall_times):.1f} s" if row.wall_times else "–"
        cells += [str(row.n), _format(row, "source/acc", with_std=False), wall, row.status, row.error]
        body.append(cells)
    return header, body


def write_csv(rows: list[Row], path: Path, rank_by: str = "target/acc") -> None:
    keys = list(rows[0].settings) if rows else []
    metric_keys = _columns(rank_by)
    fields = [*keys]
    for key in metric_keys:
        name = key.replace("/", "_")
        fields += [f"{name}_mean", f"{name}_std"]
    fields += ["n", "wall_time_s_mean", "failed", "pending", "error", "run_dirs"]

    def number(value: float) -> str:
        return "" if math.isnan(value) else repr(value)

    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        for row in rows:
            cells = [row.settings[k] for k in keys]
            for key in metric_keys:
                cells += [number(row.mean(key)), number(row.std(key))]
            wall = statistics.fmean(row.wall_times) if row.wall_times else math.nan
            cells += [row.n, number(wall), row.failed, row.pending, row.error, ";".join(row.run_dirs)]
            writer.writerow(cells)
    tmp.replace(path)


def write_markdown(rows: list[Row], path: Path, rank_by: str = "target/acc", title: str = "Sweep leaderboard") -> None:
    header, body = table_cells(rows, rank_by)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    text = [f"# {title}", "", f"Ranked by `{rank_by}`; mean ± sample std over seeds (– when n = 1).", "",
            line(header), line(["---"] * len(header)), *(line(cells) for cells in body), ""]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(text))
    tmp.replace(path)


def write_bar_chart(rows: list[Row], path: Path, rank_by: str = "target/acc") -> None:
    """Horizontal bars of the ranking metric (mean, with the sample std as error bar), best on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, _ = rank_metric(rank_by)
    finished = [r for r in rows if not math.isnan(r.mean(metric))]
    scale = 100.0 if _percent(metric) else 1.0
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
    axes.set_xlabel(_label(metric) + " (mean ± std over seeds)")
    figure.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    tmp.replace(path)


def write_leaderboard(rows: list[Row], directory: Path, rank_by: str = "target/acc") -> None:
    write_csv(rows, directory / "leaderboard.csv", rank_by)
    write_markdown(rows, directory / "leaderboard.md", rank_by)
    write_bar_chart(rows, directory / "leaderboard.png", rank_by)


def print_leaderboard(rows: list[Row], rank_by: str = "target/acc", title: str = "Sweep leaderboard") -> None:
    from rich.console import Console
    from rich.table import Table

    header, body = table_cells(rows, rank_by)
    if not any(row.error for row in rows):  # no failures: no empty error column
        header, body = header[:-1], [cells[:-1] for cells in body]
    settings = len(rows[0].settings) if rows else 0
    table = Table(title=f"{title} (by {rank_by}; mean ± std over seeds)")
    for index, name in enumerate(header):
        table.add_column(name, justify="left" if index < settings or name in ("runs", "error") else "right",
                         no_wrap=name != "error")
    for row, cells in zip(rows, body):
        table.add_row(*cells, style="red" if row.failed and not row.n else None)
    console = Console()
    console.width = max(console.width, 140)  # keep rows on one line when the output is not a terminal
    console.print(table)
