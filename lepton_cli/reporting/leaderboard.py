"""The leaderboard of a sweep: one row per configuration, seeds grouped, best first.

Ranking never reads target labels unless asked to by name. By default configurations are ranked by
the unsupervised score each run recorded: `selection/rank_score` in metrics.json, the `selection=`
validator's score of the epoch it picked (negated when lower is better). `oracle` (the target
accuracy of the epoch the target labels pick), `target/acc` (the last epoch's) or any other key under
`target/`, `oracle/` or `selection/target/` ranks on target labels; such a ranking, and the default
one when the runs' validator itself reads target labels (`selection=oracle`), is labelled
"oracle (uses target labels)" in the title, in the CSV's `ranked_by` column and on the chart.

Columns per configuration (mean ± sample std over its seeds, ddof=1; "–" or empty with one run),
each saying which selection produced it (docs/protocol.md): the validator's score, the target
accuracy and macro F1 of the last epoch's weights ("last weights"), the target accuracy of the epoch
the validator picked ("validator's pick: selection=NAME") and of the epoch the target labels pick
("oracle pick, uses target labels"), source accuracy and wall time. Written as `leaderboard.csv` (raw fractions),
`leaderboard.md` and `leaderboard.png` (percentages; drawn by leaderboard_chart.py), and printed as a rich table.

A run record is a dict: `overrides` (list of `key=value`), `group` (the overrides minus `seed`,
hashable), `status` ("ok", "failed", "busy": running in another process, or "pending"), `metrics`
(metrics.json or None), `error` (why it failed or is busy), `run_dir`, `wall_time_s`.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from lepton_cli.config import USER_WORD
from lepton_cli.errors import LeptonError
from lepton_cli.io import write_atomically, write_text_atomically

DISPLAY_KEY = USER_WORD
ORACLE = "oracle (uses target labels)"
DEFAULT_RANKING = "selection"
# metrics.json keys whose values come from target labels (selection/target/* is the validator's pick, scored on them)
TARGET_LABEL_KEYS = ("target/", "oracle/", "selection/target/")
# The metric columns, in order after the ranked one; source accuracy sits with n and wall time.
COLUMNS = {
    "selection/score": "selection score",
    "target/acc": "target acc % (last weights)",
    "target/f1_macro": "target macro F1 % (last weights)",
    "selection/target/acc": "target acc % (validator's pick)",
    "oracle/target/acc": "target acc % (oracle pick, uses target labels)",
}


@dataclass(frozen=True)
class Ranking:
    """What the configurations are sorted on: `key` in metrics.json, higher first (sign 1) or lower
    first (-1); `display_key` is the column shown for it (the validator's raw score for `selection`)."""

    name: str
    key: str
    sign: int
    display_key: str

    @property
    def uses_target_labels(self) -> bool:
        return self.key.startswith(TARGET_LABEL_KEYS)

    def label(self, rows: list[Row] = (), oracle_validator: bool = False) -> str:
        """How the leaderboard names this ranking, "oracle (uses target labels): ..." when it does: a key
        on target labels, a validator that read them (as the rows' metrics say, or `oracle_validator`:
        the runs' overrides choose selection=oracle, before any run has finished)."""
        if self.key == "selection/rank_score":
            validators = sorted({v for row in rows for v in row.validators})
            text = f"unsupervised selection score ({', '.join(validators) or 'the selection= validator'})"
        else:
            text = self.key + (", lowest first" if self.sign < 0 else "")
        oracle = self.uses_target_labels or oracle_validator or any(row.validator_uses_target_labels for row in rows)
        return f"{ORACLE}: {text}" if oracle else text


def ranking(name: str | Ranking = DEFAULT_RANKING) -> Ranking:
    """`selection` (default, no target labels), `oracle`, or a metrics.json key; '-' ranks lowest first."""
    if isinstance(name, Ranking):
        return name
    sign, bare = (-1, name[1:]) if name.startswith("-") else (1, name)
    if bare == "selection":
        return Ranking(name, "selection/rank_score", sign, "selection/score")
    if bare == "oracle":
        return Ranking(name, "oracle/target/acc", sign, "oracle/target/acc")
    if not bare or "=" in bare or bare.startswith("-"):
        raise LeptonError(f"cannot rank by {name!r}; use selection (default), oracle, or a metrics.json key such as "
                          "source/acc ('-KEY' ranks lowest first)")
    return Ranking(name, bare, sign, bare)


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
    busy: int = 0
    error: str = ""
    run_dirs: list[str] = field(default_factory=list)
    validators: set[str] = field(default_factory=set)  # "name, higher is better" per selection= the runs used
    seeds: list[str] = field(default_factory=list)  # the seed of each finished run, in the order of `values`
    validator_uses_target_labels: bool = False

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
        counts = ((self.failed, "failed"), (self.busy, "running elsewhere"), (self.pending, "pending"))
        return ", ".join([f"{self.n} ok"] + [f"{count} {word}" for count, word in counts if count])


def _metric_keys(rank: Ranking) -> list[str]:
    return [rank.display_key, *(key for key in COLUMNS if key != rank.display_key)]


def build_leaderboard(records: list[dict], varying_keys: list[str], rank_by: str | Ranking = DEFAULT_RANKING) -> list[Row]:
    """Group the runs by configuration and sort best first by `rank_by` alone (see `ranking`).
    Configurations without a finished run go last."""
    rank = ranking(rank_by)
    wanted = {*_metric_keys(rank), rank.key, "source/acc"}
    rows: dict[tuple, Row] = {}
    for record in records:
        settings = dict(split_override(o) for o in record["overrides"])
        row = rows.setdefault(tuple(record["group"]), Row({display_key(k): settings.get(k, "") for k in varying_keys}))
        row.run_dirs.append(str(record.get("run_dir", "")))
        if record["status"] == "ok":
            metrics = record["metrics"]
            for key in wanted:
                if isinstance(metrics.get(key), (int, float)):
                    row.values.setdefault(key, []).append(float(metrics[key]))
            if "selection/name" in metrics:
                better = "lower" if metrics.get("selection/mode") == "min" else "higher"
                row.validators.add(f"{metrics['selection/name']}, {better} is better")
                row.validator_uses_target_labels |= "target labels" in str(metrics.get("selection/note", ""))
            row.wall_times.append(float(record.get("wall_time_s") or metrics.get("wall_time_s") or 0.0))
            row.seeds.append(settings.get("seed", settings.get("+seed", "")))
        elif record["status"] == "failed":
            row.failed += 1
            row.error = record.get("error") or row.error
        elif record["status"] == "busy":
            row.busy += 1
            row.error = record.get("error") or row.error
        else:
            row.pending += 1

    def order(row: Row):
        value = row.mean(rank.key)  # the ranking key only: target numbers never break ties
        return (math.isnan(value), -rank.sign * value if not math.isnan(value) else 0.0, row.pending > 0 and not row.failed)

    return sorted(rows.values(), key=order)


def is_percent(key: str) -> bool:
    return key.endswith(("/acc", "/f1_macro", "/recall_macro"))


def _format(row: Row, key: str, with_std: bool = True) -> str:
    mean, std = row.mean(key), row.std(key)
    if math.isnan(mean):
        return "–"
    scale, digits = (100.0, 2) if is_percent(key) else (1.0, 4)
    text = f"{scale * mean:.{digits}f}"
    if with_std:
        text += " ± " + ("–" if math.isnan(std) else f"{scale * std:.{digits}f}")
    return text


def column_label(key: str, rows: list[Row]) -> str:
    """Column headers say which selection produced each number (docs/protocol.md, rule 4)."""
    validators = sorted({v for row in rows for v in row.validators})
    if key == "selection/score":
        return f"selection score ({'; '.join(validators)})" if validators else "selection score"
    if key == "selection/target/acc" and validators:
        names = ", ".join(sorted({v.split(",")[0] for v in validators}))
        return f"target acc % (validator's pick: selection={names})"
    return COLUMNS.get(key) or {"source/acc": "source acc %"}.get(key, key)


def _notes(rows: list[Row], rank: Ranking) -> list[str]:
    names = {v.split(",")[0] for row in rows for v in row.validators}
    notes = [f"Ranked by {rank.label(rows)}; mean ± sample std over seeds (– when n = 1)."]
    if len(names) > 1 and rank.key == "selection/rank_score":
        notes.append(f"The runs used different validators ({', '.join(sorted(names))}): their scores are not comparable.")
    return notes


def table_cells(rows: list[Row], rank_by: str | Ranking = DEFAULT_RANKING) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells shared by the markdown and terminal tables."""
    keys = list(rows[0].settings) if rows else []
    metric_keys = [k for k in _metric_keys(ranking(rank_by)) if k != "source/acc"]
    header = [*(keys or ["config"]), *(column_label(k, rows) for k in metric_keys), "n", "source acc %",
              "wall time / run", "runs", "error"]
    body = []
    for row in rows:
        cells = [*(row.settings[k] for k in keys)] if keys else ["(all)"]
        cells += [_format(row, k) for k in metric_keys]
        wall = f"{statistics.fmean(row.wall_times):.1f} s" if row.wall_times else "–"
        cells += [str(row.n), _format(row, "source/acc", with_std=False), wall, row.status, row.error]
        body.append(cells)
    return header, body


def write_csv(rows: list[Row], path: Path, rank_by: str | Ranking = DEFAULT_RANKING) -> None:
    rank = ranking(rank_by)
    keys = list(rows[0].settings) if rows else []
    metric_keys = list(dict.fromkeys([*_metric_keys(rank), rank.key, "source/acc"]))
    fields = [*keys, "ranked_by"]
    for key in metric_keys:
        name = key.replace("/", "_")
        fields += [f"{name}_mean", f"{name}_std"]
    fields += ["selection", "n", "wall_time_s_mean", "failed", "pending", "error", "run_dirs"]

    def number(value: float) -> str:
        return "" if math.isnan(value) else repr(value)

    label = rank.label(rows)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(fields)
    for row in rows:
        cells = [*(row.settings[k] for k in keys), label]
        for key in metric_keys:
            cells += [number(row.mean(key)), number(row.std(key))]
        wall = statistics.fmean(row.wall_times) if row.wall_times else math.nan
        cells += ["; ".join(sorted(row.validators)), row.n, number(wall), row.failed, row.pending + row.busy, row.error,
                  ";".join(row.run_dirs)]
        writer.writerow(cells)
    write_atomically(path, text.getvalue())


def write_markdown(rows: list[Row], path: Path, rank_by: str | Ranking = DEFAULT_RANKING,
                   title: str = "Sweep leaderboard") -> None:
    header, body = table_cells(rows, rank_by)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    write_text_atomically(path, [f"# {title}", "", *_notes(rows, ranking(rank_by)), "",
                                 line(header), line(["---"] * len(header)), *(line(cells) for cells in body)])


def write_leaderboard(rows: list[Row], directory: Path, rank_by: str | Ranking = DEFAULT_RANKING, chart: bool = True) -> None:
    write_csv(rows, directory / "leaderboard.csv", rank_by)
    write_markdown(rows, directory / "leaderboard.md", rank_by)
    from lepton_cli.reporting.leaderboard_domains import write_domain_table  # it reads the rows defined here

    write_domain_table(rows, directory / "leaderboard_domains.md")
    if chart:
        from lepton_cli.reporting.leaderboard_chart import write_bar_chart  # it draws with what this module defines

        write_bar_chart(rows, directory / "leaderboard.png", rank_by)


def print_leaderboard(rows: list[Row], rank_by: str | Ranking = DEFAULT_RANKING, title: str = "Sweep leaderboard") -> None:
    from rich.console import Console
    from rich.table import Table

    header, body = table_cells(rows, rank_by)
    if not any(row.error for row in rows):  # no failures: no empty error column
        header, body = header[:-1], [cells[:-1] for cells in body]
    settings = len(rows[0].settings) if rows else 0
    table = Table(title=f"{title}\n" + " ".join(_notes(rows, ranking(rank_by))))
    for index, name in enumerate(header):
        table.add_column(name, justify="left" if index < settings or name in ("runs", "error") else "right",
                         no_wrap=name != "error")
    for row, cells in zip(rows, body):
        table.add_row(*cells, style="red" if row.failed and not row.n else None)
    console = Console()
    widths = [max(len(name), *(len(cells[index]) for cells in body)) for index, name in enumerate(header)]
    # wide enough for every column: rich would otherwise squeeze the settings to nothing
    console.width = max(console.width, 140, sum(widths) + 3 * len(widths) + 1)
    console.print(table)
