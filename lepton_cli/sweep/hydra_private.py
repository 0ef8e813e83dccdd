"""The only place Lepton touches Hydra's private API (`hydra._internal`), one small function per use.

`lepton sweep` expands its grid exactly as `lepton train -m` would: with Hydra's override parser
given a config loader (so `glob()` sees the options of a group) and with BasicSweeper's product of
the sweeps. Hydra does not make either public. If a Hydra release moves or changes them, these
functions fail with one line naming what changed and the fix (pin hydra-core), and
tests/test_sweep_hydra_private.py fails loudly in CI before a user meets it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from lepton_cli.errors import LeptonError

TESTED_WITH = "hydra-core>=1.3,<1.4"


def _private(module: str, name: str) -> Any:
    """`module.name` from Hydra's private API, or one line saying that this Hydra lacks it."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        try:
            from hydra import __version__ as version
        except ImportError:
            version = "?"
        raise LeptonError(f"this hydra-core ({version}) no longer has {module}.{name}, a private API that lepton sweep "
                          f"uses (lepton_cli/sweep/hydra_private.py); install {TESTED_WITH}") from None


def overrides_parser(config_dir: Path):
    """Hydra's OverridesParser with a config loader for `config_dir`, so that `glob()` in an
    override can list the options of a config group."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    loader_class = _private("hydra._internal.config_loader_impl", "ConfigLoaderImpl")
    search_path = _private("hydra._internal.utils", "create_config_search_path")
    return OverridesParser.create(config_loader=loader_class(config_search_path=search_path(str(config_dir))))


def split_sweep(overrides: list) -> list[list[str]]:
    """Every job of parsed sweep overrides, as BasicSweeper orders them (the product of the sweeps,
    a later override of a key replacing an earlier one). Hydra's own errors pass through."""
    sweeper = _private("hydra._internal.core_plugins.basic_sweeper", "BasicSweeper")
    return sweeper.split_arguments(overrides, None)[0]  # max_batch_size None: one batch of every job
