"""`lepton sweep`: a grid (or an Optuna search) of `lepton train` runs, ranked in a leaderboard.

    cli.py            the command line and `main`
    session.py        one invocation: lock the sweep directory, plan, launch, leaderboard
    plan.py           the grid expanded into jobs; the Optuna search space
    records.py        run directories, resume by config hash, per-run records, the manifest
    launchers.py      the launcher interface and local subprocesses (die with the sweep)
    slurm.py          the same interface on SLURM, through submitit
    hydra_private.py  the only use of Hydra's private API
"""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """`lepton sweep ARGS`; returns the exit code. Imports nothing heavy until it runs."""
    from lepton_cli.sweep.cli import main as sweep_main

    return sweep_main(argv)
