"""Run directories: a finished run is never overwritten, an interrupted one is continued only
with `resume=DIR`, and `resume=DIR` turns into the overrides the run was started with.

`prepare_args` runs before Hydra parses the command line (so a refused command writes nothing);
`check_run_dir` runs again inside the Hydra app, once the directory is resolved.
"""

from __future__ import annotations

import os
from pathlib import Path

from lepton_cli.checkpoints import last_checkpoint
from lepton_cli.errors import LeptonError

INSPECT_FLAGS = ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "-m", "--multirun",
                 "--shell-completion", "-sc")


def _value_of(args: list[str], key: str) -> str | None:
    found = None
    for arg in args:
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+~") == key:
            found = value
    return found


def _key_of(arg: str) -> str:
    return arg.partition("=")[0].lstrip("+~")


def prepare_args(args: list[str]) -> list[str]:
    """`resume=DIR` → the overrides DIR was started with, then the new ones, then
    `hydra.run.dir=DIR`; and a run directory given by hydra.run.dir that cannot be used (a finished
    run, an interrupted one without resume=, an unwritable place) is refused before Hydra writes to it."""
    if any(arg.split("=")[0] in INSPECT_FLAGS for arg in args):
        return args
    resume = _value_of(args, "resume")
    if resume:
        run_dir = Path(resume).expanduser().resolve()
        check_resumable(run_dir)
        given = [a for a in args if _key_of(a) not in ("resume", "hydra.run.dir")]
        given_keys = {_key_of(a) for a in given}
        saved = [a for a in saved_overrides(run_dir) if _key_of(a) not in ("resume", *given_keys)]
        return [*saved, *given, f"resume={run_dir}", f"hydra.run.dir={run_dir}"]
    run_dir = _value_of(args, "hydra.run.dir")
    check_writable(Path(run_dir or "runs").expanduser())
    if run_dir:
        check_run_dir(Path(run_dir).expanduser(), resuming=False)
    return args


def saved_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides a run was started with (Hydra keeps them in .hydra/overrides.yaml)."""
    import yaml

    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    loaded = yaml.safe_load(path.read_text()) or []
    return [str(item) for item in loaded]


def check_resumable(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise LeptonError(f"resume={run_dir}: no such run directory; give the directory of the interrupted run "
                          "(runs/<date>_<time>_...)")
    if (run_dir / "metrics.json").exists():
        raise LeptonError(f"resume={run_dir}: that run already finished (metrics.json exists); nothing to resume")
    if not last_checkpoint(run_dir).is_file():
        raise LeptonError(f"resume={run_dir}: no checkpoints/last.ckpt there (the run stopped before its first "
                          "checkpoint); start it again without resume=")


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    """A finished run is never overwritten; an interrupted one only continued with resume=."""
    if (run_dir / "metrics.json").exists():
        raise LeptonError(f"{run_dir} already holds a finished run; choose a new hydra.run.dir (nothing was overwritten)")
    checkpoints = run_dir / "checkpoints"
    if not resuming and checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")):
        raise LeptonError(f"{run_dir} holds an interrupted run; continue it with `lepton train resume={run_dir.resolve()}` "
                          "or choose a new hydra.run.dir (nothing was overwritten)")


def check_writable(path: Path) -> None:
    """The run directory can be created: its nearest existing ancestor is a writable directory."""
    ancestor = path.absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise LeptonError(f"cannot create the run directory {path}: {ancestor} is a file, not a directory; "
                          "choose another hydra.run.dir")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise LeptonError(f"cannot create the run directory {path}: {ancestor} is not writable; "
                          "choose another hydra.run.dir")
