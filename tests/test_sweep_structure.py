"""The sweep package's shape: no import cycle among its modules, none of them (nor the leaderboard's) a sprawl."""

from __future__ import annotations

import ast
from pathlib import Path

SWEEP = Path(__file__).resolve().parents[1] / "lepton_cli" / "sweep"


def _imports(path: Path) -> set[str]:
    """The lepton_cli.sweep modules that `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lepton_cli.sweep"):
            if node.module == "lepton_cli.sweep":
                found |= {f"lepton_cli.sweep.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("lepton_cli.sweep.")}
    return {name for name in found if (SWEEP / f"{name.rsplit('.', 1)[1]}.py").is_file()}


def test_the_sweep_modules_import_one_way():
    graph = {f"lepton_cli.sweep.{path.stem}": _imports(path) for path in SWEEP.glob("*.py") if path.stem != "__init__"}
    visiting, done = [], set()

    def visit(module: str) -> None:
        if module in visiting:
            raise AssertionError("import cycle: " + " → ".join([*visiting[visiting.index(module):], module]))
        if module not in done:
            visiting.append(module)
            for imported in graph.get(module, ()):
                visit(imported)
            visiting.pop()
            done.add(module)

    for module in graph:
        visit(module)


def test_no_sweep_module_is_over_300_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in SWEEP.glob("*.py")}
    assert max(sizes.values()) <= 300, sizes


def test_the_leaderboard_modules_are_not_over_300_lines():
    reporting = SWEEP.parent / "reporting"
    sizes = {path.name: len(path.read_text().splitlines()) for path in reporting.glob("leaderboard*.py")}
    assert {"leaderboard.py", "leaderboard_chart.py"} <= set(sizes) and max(sizes.values()) <= 300, sizes
