"""The leave-one-domain-out table of a domain-generalisation sweep (DomainBed's layout): one row per
configuration, one column per held-out target domain, and the average over them.

Written as `leaderboard_domains.md` beside the leaderboard whenever the sweep varies `target=`.
Three tables, each saying which weights it reports: the last weights, the epoch the runs' validator
picked (with `selection=source_val` that is DomainBed's training-domain validation: held out from
each source domain, no target label read) and the epoch the target labels pick (oracle). A cell is
the mean ± sample std over seeds; the average is, per seed, the mean over the held-out domains,
then mean ± std over the seeds that finished every domain.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from lepton_cli.io import write_text_atomically
from lepton_cli.reporting.leaderboard import Row, column_label

DOMAIN_KEY = "target"
# last weights, the validator's pick, the oracle's pick (column_label says which, "uses target labels" for the last)
METRICS = ("target/acc", "selection/target/acc", "oracle/target/acc")


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    std = f"{100 * statistics.stdev(values):.2f}" if len(values) >= 2 else "–"
    return f"{100 * statistics.fmean(values):.2f} ± {std}"


def domain_table(rows: list[Row], key: str) -> tuple[list[str], list[list[str]]]:
    """(header, cells): configurations × held-out domains of metric `key`, and the average."""
    domains = list(dict.fromkeys(row.settings[DOMAIN_KEY] for row in rows))
    others = [name for name in (rows[0].settings if rows else {}) if name != DOMAIN_KEY]
    configurations: dict[tuple, dict[str, Row]] = {}
    for row in rows:
        configurations.setdefault(tuple(row.settings[name] for name in others), {})[row.settings[DOMAIN_KEY]] = row
    body = []
    for settings, by_domain in configurations.items():
        per_seed: dict[str, list[float]] = {}
        cells = []
        for domain in domains:
            row = by_domain.get(domain)
            values = row.values.get(key, []) if row else []
            cells.append(_cell(values))
            if row and len(values) == len(row.seeds):  # a value per finished run: seeds line up
                for seed, value in zip(row.seeds, values):
                    per_seed.setdefault(seed, []).append(value)
        averages = [statistics.fmean(v) for v in per_seed.values() if len(v) == len(domains)]
        body.append([*settings, *cells, _cell(averages), str(len(averages))])
    header = [*others, *(f"{DOMAIN_KEY}={domain}" for domain in domains), "average", "seeds (all domains)"]
    return header, body


def write_domain_table(rows: list[Row], path: Path) -> None:
    """`leaderboard_domains.md`, when the rows differ in their target (else nothing is written)."""
    if not rows or DOMAIN_KEY not in rows[0].settings or len({row.settings[DOMAIN_KEY] for row in rows}) < 2:
        return

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = ["# Leave-one-domain-out: target accuracy % per held-out domain", "",
             ("Each column is a held-out target domain, never trained on; mean ± sample std over seeds (– when n = 1). "
              "The average is taken per seed over the domains, then over the seeds that finished all of them.")]
    for key in METRICS:
        if not any(key in row.values for row in rows):
            continue
        header, body = domain_table(rows, key)
        lines += ["", f"## {column_label(key, rows)}", "", line(header), line(["---"] * len(header)), *map(line, body)]
    write_text_atomically(path, lines)
