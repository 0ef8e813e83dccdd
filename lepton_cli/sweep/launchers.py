"""Launchers: how a sweep's jobs run. One interface, `Launcher`; `LocalLauncher` runs each job as a
subprocess on this machine, `lepton_cli.sweep.slurm.SlurmLauncher` as a SLURM job.

Each run is a fresh `python -m lepton_cli.train <job overrides> hydra.run.dir=<run dir>` with the
distributed-launch variables removed from its environment, so DDP runs work as in `lepton train`
(Hydra's in-process multirun with `strategy=ddp` is fragile: Lightning's DDP launcher re-runs the
whole command line on each rank).

Trainings die with the sweep. A local one runs in its own process group, so a Ctrl-C in the
terminal reaches the sweep alone, which then stops its trainings (SIGTERM: Lightning stops at the
next step; SIGKILL after a grace period); SIGTERM and SIGHUP to the sweep do the same. If the sweep
itself is killed (even by SIGKILL), the kernel sends each training SIGTERM (Linux's parent-death
signal), so no training is left running with nobody to record it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from lepton_cli.config import override_value
from lepton_cli.distributed import child_environment
from lepton_cli.sweep.options import Options
from lepton_cli.sweep.records import Job, read_result, save_record

_HYDRA_NOISE = ("Set the environment variable HYDRA_FULL_ERROR", "full_key:", "Error executing job with overrides")
POLL_SECONDS = 0.2  # how often the local launcher looks for ended trainings
GRACE_SECONDS = 10.0  # how long a stopped training may take to exit after SIGTERM before SIGKILL
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached the sweep: it stops like after Ctrl-C (exit code 128 + signal)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into `Terminated` while the block runs, so that the launchers' Ctrl-C
    path (stop local trainings, cancel SLURM jobs) runs for them too."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class Launcher:
    """Runs a sweep's jobs. `check` is called with every job's overrides before anything is written
    (it raises LeptonError for a mistake); `run` runs the jobs, sets each job's `record` and calls
    `on_done(job)` as each ends. On KeyboardInterrupt (Ctrl-C, `Terminated`) or an error it stops
    every job it started, then re-raises."""

    def __init__(self, options: Options, sweep_dir: Path):
        self.options, self.sweep_dir = options, sweep_dir

    def check(self, jobs_overrides: list[list[str]]) -> None:
        """Nothing to check by default."""

    def run(self, jobs: list[Job], on_done: Callable[[Job], None]) -> None:
        raise NotImplementedError


class LocalLauncher(Launcher):
    """Subprocesses on this machine, `options.jobs` at a time, all started from the calling thread
    (the parent-death signal follows the thread that started a child)."""

    def run(self, jobs: list[Job], on_done: Callable[[Job], None]) -> None:
        waiting, running = list(jobs), []
        try:
            while waiting or running:
                while waiting and len(running) < self.options.jobs:
                    running.append(Training(waiting.pop(0)))
                ended = [training for training in running if training.process.poll() is not None]
                for training in ended:
                    running.remove(training)
                    job = training.job
                    job.record = {**training.finish(), "run_dir": str(job.run_dir)}
                    on_done(job)
                if not ended:
                    time.sleep(POLL_SECONDS)
        except BaseException:
            stop(running)
            raise


def train_command(job: Job) -> list[str]:
    assert job.run_dir is not None
    return [sys.executable, "-m", "lepton_cli.train", *job.overrides, f"hydra.run.dir={override_value(job.run_dir.resolve())}"]


def _die_with_parent(own_group: bool) -> Callable[[], None]:
    """What the child runs between fork and exec: its own process group if asked, and on Linux
    SIGTERM from the kernel when this process dies."""
    parent = os.getpid()
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before fork: the child only calls it

    def preexec() -> None:
        if own_group:
            os.setpgid(0, 0)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the sweep died before prctl took effect
                os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class Training:
    """One training subprocess of a job, writing its output to `<run dir>/sweep.log` (rank N > 0 of a
    SLURM job: sweep_rank<N>.log). `own_group`: its own process group (local runs)."""

    def __init__(self, job: Job, rank: int = 0, keep_slurm: bool = False, own_group: bool = True):
        assert job.run_dir is not None
        job.run_dir.mkdir(parents=True, exist_ok=True)
        self.job, self.rank, self.started = job, rank, time.time()
        self.log_path = job.run_dir / ("sweep.log" if rank == 0 else f"sweep_rank{rank}.log")
        command = train_command(job)
        with self.log_path.open("w") as log:  # a log the child streams into, not a data file: no atomic write
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            # preexec_fn is the only way to set the parent-death signal; it makes three system calls
            # and nothing else, and the local launcher starts children from one thread
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=child_environment(keep_slurm),
                                            preexec_fn=_die_with_parent(own_group))  # noqa: PLW1509

    def finish(self) -> dict:
        """The record of the ended training (written to its sweep.json), with its metrics. Finished means
        a finite target/acc in metrics.json; the ranking key may be missing (the leaderboard shows "–")."""
        returncode = self.process.wait()
        assert self.job.run_dir is not None
        metrics = read_result(self.job.run_dir) if returncode == 0 else None
        error = ""
        if returncode != 0:
            error = last_error_line(self.log_path) or f"exit code {returncode}"
        elif metrics is None:
            error = "metrics.json missing, unreadable or without a finite target/acc (NaN?)"
        return save_record(self.job, returncode, round(time.time() - self.started, 2), metrics, error)


def launch(job: Job, rank: int = 0, keep_slurm: bool = False) -> dict | None:
    """Run one job to the end in this process's process group (what each task of a SLURM job does);
    returns its record. Every task runs it (one per rank, as srun started them); rank 0 reports (its
    record goes to the run's sweep.json), the others return None."""
    training = Training(job, rank, keep_slurm, own_group=False)
    training.process.wait()
    return training.finish() if rank == 0 else None


def stop(trainings: list[Training], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to each training's process group, SIGKILL to those still there after `grace` seconds."""
    if not trainings:
        return
    print(f"\nlepton sweep: stopping {len(trainings)} running training(s)", file=sys.stderr, flush=True)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for training in trainings:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(training.process.pid, signum)
        deadline = time.time() + grace
        for training in trainings:
            with contextlib.suppress(subprocess.TimeoutExpired):
                training.process.wait(timeout=max(0.0, deadline - time.time()))
        if all(training.process.poll() is not None for training in trainings):
            return


def last_error_line(log_path: Path) -> str:
    """The last line of the log that names an error, without Hydra's boilerplate around it."""
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(_HYDRA_NOISE)]
    for line in reversed(lines):
        if re.search(r"error|exception|nan|traceback", line, re.IGNORECASE):
            match = re.fullmatch(r"(\w+(?:Error|Exception))\((['\"])(.*)\2\)", line)
            return f"{match[1]}: {match[3]}" if match else line[:300]
    return lines[-1][:300] if lines else ""
