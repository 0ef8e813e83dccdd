"""Helpers for `lepton sweep` tests: CSV reading, fake run directories in the real format, and a
sweep whose trainings are tests/helpers/fake_train.py (in this process, or as a real process tree).

    python -m tests.helpers.sweep_fakes ARGS...    `lepton sweep ARGS...` with fake trainings (cwd: the repository)
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lepton_cli.sweep import launchers
from lepton_cli.sweep.records import Job, job_digest

REPOSITORY = Path(__file__).resolve().parents[2]
FAKE_TRAIN = Path(__file__).with_name("fake_train.py")


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def fake_train_command(job: Job) -> list[str]:
    assert job.run_dir is not None
    return [sys.executable, str(FAKE_TRAIN), *job.overrides, f"hydra.run.dir={job.run_dir.resolve()}"]


def use_fake_training(monkeypatch) -> None:
    """Sweeps in this test start tests/helpers/fake_train.py instead of lepton_cli.train."""
    monkeypatch.setattr(launchers, "train_command", fake_train_command)


def fake_launch_task(*args):
    """`lepton_cli.sweep.slurm.launch_task` with fake_train.py as the training: what a submitit job runs
    when a test puts this in its place (submitit pickles it by name, so the job imports this module)."""
    from lepton_cli.sweep import slurm

    launchers.train_command = fake_train_command
    return slurm.launch_task(*args)


def fake_run(sweep_dir: Path, overrides: list[str], metrics: dict | None) -> Path:
    """A run directory as a sweep would find it on resume: named by the job's hash, with metrics.json
    when `metrics` is given (None: a failed or cut-off run)."""
    run_dir = sweep_dir / f"fake_{job_digest(overrides)}"
    run_dir.mkdir(parents=True)
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def is_running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody reaped yet counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every path under `directory` with its size and modification time: equal snapshots, nothing written or moved."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.rglob("*"))}


def fake_sweep_process_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.helpers.sweep_fakes", *args]


def fake_sweep_environment(seconds: float) -> dict[str, str]:
    environment = {**os.environ, "FAKE_TRAIN_SECONDS": str(seconds)}
    environment.pop("LEPTON_DEBUG", None)
    return environment


if __name__ == "__main__":
    from lepton_cli.sweep import main

    launchers.train_command = fake_train_command
    sys.exit(main(sys.argv[1:]))
