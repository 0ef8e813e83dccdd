"""The settings of one `lepton sweep` invocation, shared by the planner, the launchers and the command."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lepton_cli.reporting.leaderboard import DEFAULT_RANKING


@dataclass
class Options:
    grid: list[str] = field(default_factory=list)
    sweep_dir: Path | None = None
    force: bool = False
    jobs: int = 1
    rank_by: str = DEFAULT_RANKING  # `selection`: no target labels; see lepton_cli/reporting/leaderboard.py
    optuna_trials: int | None = None
    launcher: str = "local"
    launcher_settings: dict = field(default_factory=dict)  # hydra.launcher.KEY=VALUE for submitit
