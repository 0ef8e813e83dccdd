#!/usr/bin/env python
"""Write the results tables of README.md and docs/benchmarks.md from the committed sweep leaderboards.

Every real-data table in the docs comes from a file in the repository: a leaderboard that `lepton
sweep` wrote (`leaderboard.csv`, copied to `docs/results/NAME.csv`) and its entry in
`docs/results/tables.yaml`, which holds what the numbers need beside them: the command that made
them, the machine, the date, the step budget and the published numbers with their sources. A table
goes between two marker lines in any of the docs:

    <!-- results:NAME start -->
    (written by this script)
    <!-- results:NAME end -->

    python scripts/results_tables.py            # rewrite the tables in README.md and docs/benchmarks.md
    python scripts/results_tables.py --check    # exit 1, naming the doc, when a table is not up to date
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", ROOT / "docs" / "benchmarks.md")
RESULTS = ROOT / "docs" / "results"
MARKERS = re.compile(r"^<!-- results:(?P<name>[\w.-]+) (?P<end>start|end) -->$", re.MULTILINE)
# (CSV column stem, table header): each selection column says which selection produced it (docs/protocol.md rule 4).
ACCURACY_COLUMNS = (
    ("target_acc", "target acc % (last weights)"),
    ("selection_target_acc", "target acc % (validator's pick: selection={selection})"),
    ("oracle_target_acc", "target acc % (oracle pick, uses target labels)"),
)


def load_specs(results: Path) -> dict[str, dict]:
    """`tables.yaml`: table name → {csv, title, command, machine, date, budget, published, notes}."""
    import yaml

    from lepton_cli.errors import LeptonError

    path = results / "tables.yaml"
    if not path.is_file():
        raise LeptonError(f"{path} is missing; it lists each results table and the leaderboard CSV it reads")
    try:
        specs = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise LeptonError(f"{path} is not valid YAML ({' '.join(str(error).split())})") from None
    for name, spec in specs.items():
        missing = [key for key in ("csv", "title", "command", "machine", "date", "budget") if not (spec or {}).get(key)]
        if missing:
            raise LeptonError(f"{path}: table {name} has no {', '.join(missing)}; every table says how it was made")
    return specs


def read_leaderboard(path: Path) -> list[dict[str, str]]:
    from lepton_cli.errors import LeptonError

    if not path.is_file():
        raise LeptonError(f"{path} is missing; copy the sweep's leaderboard.csv there (lepton sweep ... --dir DIR)")
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    needed = {"ranked_by", "n", *(f"{stem}_mean" for stem, _ in ACCURACY_COLUMNS)}
    if rows and not needed <= set(rows[0]):
        raise LeptonError(f"{path} is not a lepton sweep leaderboard (it lacks {', '.join(sorted(needed - set(rows[0])))})")
    return rows


def _percent(mean: str, std: str) -> str:
    if not mean:
        return "–"
    text = f"{100 * float(mean):.1f}"
    return text + " ± " + (f"{100 * float(std):.1f}" if std and not math.isnan(float(std)) else "–")


def render(name: str, spec: dict, rows: list[dict[str, str]]) -> str:
    """The markdown of one table: caption (command, machine, date, budget), rows, published numbers, notes."""
    label_keys = list(rows[0])[: list(rows[0]).index("ranked_by")] if rows else ["method"]
    selection = next((row["selection"].split(",")[0] for row in rows if row.get("selection")), "?")
    published = spec.get("published") or {}
    header = [" · ".join(label_keys), *(title.format(selection=selection) for _, title in ACCURACY_COLUMNS),
              "runs", "wall time / run", "published (source)"]
    lines = [f"**{spec['title']}** (`docs/results/{spec['csv']}`, written by `python scripts/results_tables.py`)",
             "",
             f"Command: `{spec['command']}`  ",
             f"Machine: {spec['machine']}; date: {spec['date']}; budget: {spec['budget']}.  ",
             "Mean ± sample std over seeds (– when n = 1).",
             "",
             "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for row in rows:
        label = " · ".join(row[key] for key in label_keys)
        runs = f"{row['n']} ok" + "".join(f", {row[key]} {key}" for key in ("failed", "pending")
                                          if row.get(key) not in (None, "", "0"))
        wall = f"{float(row['wall_time_s_mean']):.0f} s" if row.get("wall_time_s_mean") else "–"
        cells = [label, *(_percent(row[f"{stem}_mean"], row.get(f"{stem}_std", "")) for stem, _ in ACCURACY_COLUMNS),
                 runs, wall, str(published.get(label, "–"))]
        lines.append("| " + " | ".join(cells) + " |")
    for note in spec.get("notes") or []:
        lines += ["", note.strip()]
    return "\n".join(lines)


def rewrite(text: str, tables: dict[str, str], doc: Path) -> str:
    """`text` with the part between each pair of markers replaced by its table."""
    from lepton_cli.errors import LeptonError

    out, position, open_name = [], 0, None
    for match in MARKERS.finditer(text):
        name, is_end = match["name"], match["end"] == "end"
        if not is_end:
            if open_name:
                raise LeptonError(f"{doc}: results:{open_name} has no end marker before results:{name} starts")
            if name not in tables:
                raise LeptonError(f"{doc}: results:{name} names no table of docs/results/tables.yaml "
                                  f"({', '.join(sorted(tables))})")
            out.append(text[position:match.end()])
            out.append("\n" + tables[name] + "\n")
            open_name = name
        else:
            if open_name != name:
                raise LeptonError(f"{doc}: results:{name} end marker without its start marker")
            out.append(match.group(0))
            open_name = None
        position = match.end()
    if open_name:
        raise LeptonError(f"{doc}: results:{open_name} has no end marker")
    out.append(text[position:])
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    from lepton_cli.errors import one_line_errors

    return one_line_errors(_main)(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a doc's table is out of date")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of tables.yaml and the CSVs (docs/results)")
    parser.add_argument("--docs", type=Path, nargs="+", default=list(DOCS), help="the markdown files with markers")
    args = parser.parse_args(argv)

    from lepton_cli.errors import LeptonError
    from lepton_cli.io import write_atomically

    for doc in args.docs:
        if not doc.is_file():
            raise LeptonError(f"{doc} does not exist; name the markdown files with markers after --docs")
    specs = load_specs(args.results)
    tables = {name: render(name, spec, read_leaderboard(args.results / spec["csv"])) for name, spec in specs.items()}
    stale = []
    for doc in args.docs:
        text = doc.read_text()
        new = rewrite(text, tables, doc)
        if new != text:
            stale.append(doc)
            if not args.check:
                write_atomically(doc, new)
    if args.check and stale:
        print(f"out of date: {', '.join(map(str, stale))}; run python scripts/results_tables.py", file=sys.stderr)
        return 1
    print(("checked: up to date" if args.check else "written") + f" ({len(tables)} tables, {len(args.docs)} docs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
