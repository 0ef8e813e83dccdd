"""One `lepton sweep` invocation: check every job, then, holding the sweep directory's lock, plan
(resume), launch, and keep the leaderboard current as runs end.

Two sweeps in one directory at once would both move and rerun the same runs: the sweep holds
`directory_lock(<sweep dir>, "sweep directory")` from planning to its last leaderboard, and a second
one stops with one line before it writes or moves anything.
"""

from __future__ import annotations

import contextlib
import difflib
import sys
import time
from datetime import datetime
from pathlib import Path

from lepton_cli.io import directory_lock
from lepton_cli.reporting.leaderboard import ORACLE, build_leaderboard, print_leaderboard, ranking, write_leaderboard
from lepton_cli.sweep.launchers import Launcher, LocalLauncher, Terminated, stop_on_signals
from lepton_cli.sweep.options import Options
from lepton_cli.sweep.plan import check_jobs, chooses_oracle, expand_grid, is_seed, optuna_study, search_space, tell, varying_keys
from lepton_cli.sweep.records import Job, is_finite, plan_runs, write_manifest
from lepton_cli.sweep.slurm import SlurmLauncher, require_submitit

CHART_SECONDS = 30.0  # runs take minutes; tests and quick sweeps need not redraw the chart after each


def default_sweep_dir() -> Path:
    return Path("runs") / "sweeps" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def make_launcher(options: Options, sweep_dir: Path) -> Launcher:
    if options.launcher == "local":
        return LocalLauncher(options, sweep_dir)
    require_submitit(options.launcher)
    return SlurmLauncher(options, sweep_dir)


class Sweep:
    """The state of one `lepton sweep` invocation: its jobs, their records, the leaderboard."""

    def __init__(self, options: Options, keys: list[str], sweep_dir: Path):
        self.options, self.keys, self.sweep_dir = options, keys, sweep_dir
        self.ranking = ranking(options.rank_by)
        self.oracle_validator = False  # some runs choose selection=oracle (the validator reads the target labels)
        self.jobs: list[Job] = []
        self.finished = 0
        self.chart_written = time.monotonic()  # the first chart after CHART_SECONDS, or at the end

    def label(self) -> str:
        """The ranking's name, "oracle (uses target labels): ..." when it or the runs' validator reads them."""
        return self.ranking.label(self.rows(), oracle_validator=self.oracle_validator)

    def rows(self) -> list:
        records = [{**job.record, "group": job.group} for job in self.jobs]
        return build_leaderboard(records, [k for k in self.keys if not is_seed(k)], self.ranking)

    def refresh(self, final: bool = False) -> list:
        """Rewrite the leaderboard; its chart (a second of matplotlib) at most every CHART_SECONDS, and at the end."""
        rows = self.rows()
        chart = final or time.monotonic() - self.chart_written >= CHART_SECONDS
        write_leaderboard(rows, self.sweep_dir, self.ranking, chart=chart)
        if chart:
            self.chart_written = time.monotonic()
        return rows

    def report(self, job: Job, total: int) -> None:
        self.finished += 1
        record = job.record
        label = " ".join(o for o in job.overrides if o.partition("=")[0] in self.keys) or job.name
        if record["status"] == "ok":
            key = self.ranking.display_key
            value, wall = record["metrics"].get(key), record.get("wall_time_s")
            oracle = " (uses target labels)" if self.ranking.uses_target_labels or chooses_oracle(job.overrides) else ""
            print(f"[{self.finished}/{total}] done    {label}: {key}{oracle} {f'{value:.4f}' if is_finite(value) else '–'} "
                  f"({f'{wall:.0f} s' if is_finite(wall) else '–'})", flush=True)
        elif record["status"] == "busy":
            print(f"[{self.finished}/{total}] BUSY    {label}: {record['error']}", flush=True)
        else:
            print(f"[{self.finished}/{total}] FAILED  {label}: {record['error']} (log: {job.run_dir}/sweep.log)", flush=True)
        self.refresh()

    def announce_busy(self) -> None:
        busy = [job for job in self.jobs if job.record.get("status") == "busy"]
        if busy:
            print(f"lepton sweep: {len(busy)} run(s) still running in another process, left alone: "
                  f"{' '.join(str(job.run_dir) for job in busy)}", flush=True)

    def warn_missing_rank_key(self) -> None:
        """One line when finished runs lack the ranking key: they show "–" and rank last, and are never rerun."""
        key = self.ranking.key
        finished = [job.record["metrics"] for job in self.jobs if job.record.get("status") == "ok"]
        missing = [metrics for metrics in finished if not is_finite(metrics.get(key))]
        if not missing:
            return
        if key == "selection/rank_score":
            hint = "the validator scores validation epochs: was validation turned off?"
        elif len(missing) < len(finished):
            hint = "NaN, or not recorded by those runs"
        else:
            close = difflib.get_close_matches(key, sorted({k for metrics in finished for k in metrics}), n=1)
            sign = "-" if self.ranking.sign < 0 else ""
            hint = f"no run has it: did you mean --rank {sign}{close[0]}?" if close else "no run has it: is --rank spelled right?"
        print(f"lepton sweep: warning: {len(missing)} of {len(finished)} finished run(s) have no finite {key} in "
              f"metrics.json ({hint}); they show – and rank last", file=sys.stderr, flush=True)

    def summary(self) -> int:
        rows = self.refresh(final=True)
        print_leaderboard(rows, self.ranking)
        self.warn_missing_rank_key()
        failed = [job for job in self.jobs if job.record.get("status") == "failed"]
        busy = [job for job in self.jobs if job.record.get("status") == "busy"]
        ok = sum(job.record.get("status") == "ok" for job in self.jobs)
        print(f"{ok} of {len(self.jobs)} runs finished, {len(failed)} failed"
              + (f", {len(busy)} still running in another process" if busy else "")
              + f". Leaderboard: {self.sweep_dir}/leaderboard.md (.csv, .png). Resume or extend with --dir {self.sweep_dir}")
        if failed:
            print(f"lepton sweep: {len(failed)} run(s) failed; see their sweep.log", file=sys.stderr)
        return 1 if failed or busy else 0


def _interrupted(error: KeyboardInterrupt, sweep_dir: Path, what: str) -> int:
    print(f"\nlepton sweep: {'terminated' if isinstance(error, Terminated) else 'interrupted'}; "
          f"rerun with --dir {sweep_dir} to {what}", file=sys.stderr)
    return 128 + error.signum if isinstance(error, Terminated) else 130


def grid_command(options: Options, execute: bool = True, summary: bool = True) -> tuple[int, Sweep]:
    """Run the grid (`execute=False`: only find the finished runs, move nothing); the exit code and the sweep."""
    jobs_overrides = expand_grid(options.grid)
    check_jobs(jobs_overrides)
    keys = varying_keys(jobs_overrides)
    sweep_dir = options.sweep_dir or default_sweep_dir()
    launcher = make_launcher(options, sweep_dir)
    launcher.check(jobs_overrides)
    sweep = Sweep(options, keys, sweep_dir)
    sweep.oracle_validator = chooses_oracle(o for job in jobs_overrides for o in job)
    # execute=False reads the directory and writes nothing: no lock, no leaderboard
    lock = directory_lock(sweep_dir, "sweep directory") if execute else contextlib.nullcontext()
    with stop_on_signals(), lock:
        to_run, kept = plan_runs(jobs_overrides, keys, sweep_dir, options, move=execute)
        sweep.jobs = sorted(to_run + kept, key=lambda job: jobs_overrides.index(job.overrides))
        configs = len({job.group for job in sweep.jobs})
        done = sum(job.record["status"] == "ok" for job in kept)
        print(f"lepton sweep: {len(sweep.jobs)} runs ({configs} configurations) in {sweep_dir}: "
              f"{len(to_run) if execute else 0} to run, {done} already done", flush=True)
        sweep.announce_busy()
        if not execute:
            return 0, sweep
        write_manifest(sweep_dir, options, sweep.jobs, sweep.label())
        sweep.refresh()
        try:
            launcher.run(to_run, lambda job: sweep.report(job, len(to_run)))
        except KeyboardInterrupt as error:
            sweep.refresh(final=True)
            return _interrupted(error, sweep_dir, "resume"), sweep
        if not summary:
            sweep.refresh(final=True)
            return 0, sweep
        return sweep.summary(), sweep


def optuna_command(options: Options) -> tuple[int, Sweep]:
    """Optuna's ask/tell loop: each trial is one job per seed, its value the mean of the ranking key
    (by default the unsupervised selection score: no target labels)."""
    rank = ranking(options.rank_by)
    study = optuna_study(rank.sign)
    space = search_space(options.grid)
    check_jobs(space.examples())
    sweep_dir = options.sweep_dir or default_sweep_dir()
    launcher = make_launcher(options, sweep_dir)
    launcher.check(space.examples())
    sweep = Sweep(options, space.keys, sweep_dir)
    sweep.oracle_validator = chooses_oracle(o for job in space.examples() for o in job)  # every searched value once
    seeds = len(space.seeds)
    total = options.optuna_trials * seeds
    with stop_on_signals(), directory_lock(sweep_dir, "sweep directory"):
        print(f"lepton sweep: Optuna, {options.optuna_trials} trials × {seeds} seed(s) "
              f"{'maximising' if rank.sign > 0 else 'minimising'} {sweep.label()} in {sweep_dir}", flush=True)
        asked = 0
        planned: dict[tuple[str, ...], Job] = {}  # a job that repeats one of an earlier trial runs once
        try:
            while asked < options.optuna_trials:
                batch = [study.ask() for _ in range(min(max(1, options.jobs // seeds), options.optuna_trials - asked))]
                asked += len(batch)
                trial_jobs, batch_to_run = [], []
                for trial in batch:
                    overrides = space.jobs(trial)
                    to_run, kept = plan_runs(overrides, space.keys, sweep_dir, options, planned=planned)
                    trial_jobs.append((trial, [planned[tuple(o)] for o in overrides]))  # a repeated trial reuses its runs
                    sweep.jobs += to_run + kept
                    batch_to_run += to_run
                    for job in kept:
                        sweep.report(job, total)
                launcher.run(batch_to_run, lambda job: sweep.report(job, total))
                for trial, jobs in trial_jobs:
                    tell(study, trial, [rank_value(job, rank.key) for job in jobs])
        except KeyboardInterrupt as error:
            sweep.refresh(final=True)
            write_manifest(sweep_dir, options, sweep.jobs, sweep.label())
            return _interrupted(error, sweep_dir, "reuse the finished trials"), sweep
        write_manifest(sweep_dir, options, sweep.jobs, sweep.label())
        code = sweep.summary()
    if any(trial.value is not None for trial in study.trials):
        best = [*space.fixed, *(f"{key}={value}" for key, value in study.best_trial.params.items())]
        oracle = f" ({ORACLE})" if rank.uses_target_labels or chooses_oracle(best) else ""
        print(f"best trial: {study.best_trial.params} → {rank.key} {study.best_value:.4f}{oracle}")
    return code, sweep


def rank_value(job: Job, key: str) -> float | None:
    """A finished run's ranking key for Optuna; None (the trial fails) when it failed or lacks the key."""
    value = job.record["metrics"].get(key) if job.record.get("status") == "ok" else None
    return value if is_finite(value) else None
