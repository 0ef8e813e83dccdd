"""lepton_cli/sweep/hydra_private.py is the only user of Hydra's private API. These tests fail, with
a message that says so, on a Hydra release that moved or changed what `lepton sweep` relies on."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from lepton_cli.config import conf_dir
from lepton_cli.errors import LeptonError
from lepton_cli.sweep import hydra_private

PACKAGE = Path(__file__).resolve().parents[1] / "lepton_cli"
CHANGED = "Hydra changed a private API that lepton sweep relies on; update lepton_cli/sweep/hydra_private.py"


def test_the_private_parser_still_expands_glob_over_a_config_group():
    try:
        (override,) = hydra_private.overrides_parser(conf_dir()).parse_overrides(["method=glob(*)"])
        methods = list(override.sweep_string_iterator())
    except (LeptonError, TypeError, AttributeError) as error:
        pytest.fail(f"{CHANGED}: {error}")
    assert {"source_only", "dann"} <= set(methods), f"{CHANGED}: glob(*) over method gave {methods}"


def test_the_private_sweeper_still_splits_a_grid_in_hydras_order():
    parser = hydra_private.overrides_parser(conf_dir())
    try:
        jobs = hydra_private.split_sweep(parser.parse_overrides(["method.lr=1e-3,1e-2", "seed=0,1", "seed=5"]))
    except (LeptonError, TypeError, AttributeError) as error:
        pytest.fail(f"{CHANGED}: {error}")
    assert jobs == [["method.lr=0.001", "seed=5"], ["method.lr=0.01", "seed=5"]], f"{CHANGED}: got {jobs}"


def test_a_missing_private_api_is_one_line_that_names_it_and_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "hydra._internal.core_plugins.basic_sweeper", None)  # `import` raises ImportError
    with pytest.raises(LeptonError) as raised:
        hydra_private.split_sweep([])
    message = str(raised.value)
    assert "\n" not in message and "hydra._internal.core_plugins.basic_sweeper.BasicSweeper" in message
    assert "hydra-core>=1.3,<1.4" in message


def test_no_other_module_imports_hydra_internals():
    users = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if any(name.startswith("hydra._internal") for name in names):
                users.append(path.relative_to(PACKAGE.parent).as_posix())
    assert set(users) <= {"lepton_cli/sweep/hydra_private.py"}, f"Hydra's private API used outside hydra_private.py: {users}"
