"""`lepton sweep`: run a grid (or an Optuna search) of experiments and rank them in a leaderboard.

The grid is expanded with Hydra's own override parser and BasicSweeper, so comma lists,
`range()`, `choice()` and `glob()` mean what Hydra documents. Each run is a fresh subprocess
`python -m lepton_cli.train <job overrides> hydra.run.dir=<sweep dir>/<run dir>` with the
distributed-launch variables removed from its environment, so DDP runs work as in `lepton train`
(Hydra's in-process multirun with `strategy=ddp` is fragile, see HYDRA_LIGHTNING_NOTES.md).

Resume: a run directory is named `<varying overrides>_<hash>`, the hash being the sha1 of the
run's composed config (interpolations unresolved, `hydra.*` left out), so overrides that spell the
same run differently, or in another order, find the same directory. A run is finished when its
metrics.json holds a finite target accuracy (and ranking metric); failed or cut-off runs are moved
aside to `<dir>.old-<n>` and run again, and so is every run with `--force`: old results are never
deleted.

Clusters: `--launcher slurm` submits each run as a SLURM job through submitit; see lepton_cli/slurm.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lepton_cli.config import GROUP_ALIASES, USER_GROUPS, compose_job, conf_dir, rewrite_overrides
from lepton_cli.errors import LeptonError

HELP = """\
usage: lepton sweep [OPTIONS] [sweep=PRESET] [OVERRIDES...]

Run every combination of the overrides (Hydra's sweep syntax), each as its own `lepton train`
run, and rank the configurations in a leaderboard (runs that differ only in seed are grouped).

grid syntax (Hydra's; quote it in the shell):
  method=source_only,dann            a comma list
  'method.trade_off=range(0.1,1.1,0.3)'   0.1, 0.4, 0.7, 1.0 (stop excluded)
  'seed=range(3)'                    0, 1, 2
  'method.lr=choice(1e-3,1e-2)'      a list
  'trainer=glob(*,exclude=[gpu,ddp])'  every option of a group matching a pattern
  sweep=methods_digits               start from a preset in conf/sweep/ (later overrides win)

options:
  --dir DIR          sweep directory (default runs/sweeps/<date>_<time>; also hydra.sweep.dir=DIR);
                     rerun the same command with the same --dir to resume: finished runs are skipped
  --force            rerun finished runs too (old run directories are moved to <dir>.old-<n>)
  --jobs N           run N jobs at once (default 1; with --launcher slurm: at most N per job array)
  --rank-by KEY      metrics.json key to rank by (default target/acc; '-KEY' ranks lowest first).
                     Target accuracy needs target labels: in real unsupervised adaptation rank by
                     an unsupervised criterion instead.
  --optuna N         search instead of a grid: N Optuna trials maximising --rank-by over
                     'key=interval(lo,hi)', 'key=tag(log,interval(lo,hi))', 'key=int(interval(a,b))'
                     and lists; `seed=0,1` runs every seed per trial (needs pip install lepton[search])
  --launcher NAME    local (default): subprocesses on this machine; slurm: one SLURM job per run, each
                     with trainer.num_nodes nodes and trainer.devices tasks (and GPUs) per node
                     (needs pip install lepton[cluster]; Ctrl-C cancels the jobs)
  hydra/sweeper=optuna               the same as --optuna 20 (hydra.sweeper.n_trials=N: --optuna N;
                     hydra.sweeper.direction=minimize ranks lowest first)
  hydra/launcher=submitit_slurm      the same as --launcher slurm (joblib, basic: local)
  hydra.launcher.KEY=VALUE           a SLURM setting, named as in hydra-submitit-launcher: partition,
                     timeout_min, mem_gb, cpus_per_task, account, qos, constraint, array_parallelism,
                     additional_parameters, ...; hydra.launcher.n_jobs=N is --jobs N

writes into the sweep directory: one directory per run (with sweep.log, its output), and
leaderboard.csv, leaderboard.md, leaderboard.png, rewritten after each run.
Exit code: 0 when every run finished, 1 when a run failed, 2 for a mistake in the command.

examples:
  lepton sweep method=source_only,dann seed=0,1,2
  lepton sweep method=dann method.lr=1e-3,3e-3,1e-2 'method.trade_off=range(0.1,1.1,0.3)'
  lepton sweep sweep=methods_digits --jobs 2 --dir runs/sweeps/methods
  lepton sweep --optuna 20 method=dann 'method.lr=tag(log,interval(1e-4,1e-1))'
  lepton sweep --launcher slurm hydra.launcher.partition=gpu hydra.launcher.timeout_min=120 \\
      trainer=ddp trainer.devices=4 method=dann,cdan seed=0,1,2
"""

# Set by torchrun/srun/Lightning for one process; a child that inherits them thinks it is a rank.
LAUNCH_VARIABLES = ("LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "RANK", "NODE_RANK", "GROUP_RANK",
                    "LOCAL_WORLD_SIZE", "PL_GLOBAL_SEED", "PL_SEED_WORKERS")
# Set by srun for one task of a job step: a local run that inherited them inside a SLURM allocation would
# take itself for one of several ranks srun started, and Lightning would wait for the others.
SLURM_TASK_VARIABLES = ("SLURM_NTASKS", "SLURM_NPROCS", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID", "SLURM_LOCALID",
                        "SLURM_NODEID", "SLURM_STEP_ID", "SLURM_STEPID")
# `hydra/launcher=NAME` as Hydra's launcher plugins spell it. The local launcher plays joblib's role
# (parallel local jobs) with subprocesses, so that DDP runs work (joblib + ddp fails).
HYDRA_LAUNCHERS = {"basic": {"launcher": "local", "jobs": 1}, "joblib": {"launcher": "local"},
                   "submitit_slurm": {"launcher": "slurm"}, "submitit_local": {"launcher": "submitit_local"}}
LAUNCHERS = ("local", "slurm", "submitit_local")  # submitit_local: submitit on this machine, for tests
_HYDRA_NOISE = ("Set the environment variable HYDRA_FULL_ERROR", "full_key:", "Error executing job with overrides")


@dataclass
class Options:
    grid: list[str] = field(default_factory=list)
    sweep_dir: Path | None = None
    force: bool = False
    jobs: int = 1
    rank_by: str = "target/acc"
    optuna_trials: int | None = None
    launcher: str = "local"
    launcher_settings: dict = field(default_factory=dict)  # hydra.launcher.KEY=VALUE for submitit


@dataclass
class Job:
    """One run: its overrides, the hash that identifies it across invocations, and its directory."""

    overrides: list[str]
    digest: str
    name: str
    run_dir: Path | None = None
    record: dict = field(default_factory=dict)

    @property
    def group(self) -> tuple[str, ...]:
        return tuple(o for o in self.overrides if not o.startswith(("seed=", "+seed=")))


# ---- command line ---------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> Options:
    options, settings, grid, line_settings = Options(), {}, [], {}
    it = iter(argv)
    for arg in it:
        name, _, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in ("--dir", "--jobs", "--rank-by", "--optuna", "--launcher"):
            value = inline or next(it, None)
            if value is None:
                raise LeptonError(f"{name} needs a value (see lepton sweep --help)")
            settings[name[2:].replace("-", "_")] = value
        elif arg == "--force":
            options.force = True
        elif arg in ("-m", "--multirun"):
            continue  # `lepton sweep` is always a multirun
        elif arg.startswith("-"):
            raise LeptonError(f"unknown option {arg!r} for lepton sweep (see lepton sweep --help)")
        elif arg.startswith("sweep="):
            preset_grid, preset_settings = load_preset(arg.partition("=")[2])
            grid = [*preset_grid, *grid]
            settings = {**preset_settings, **settings}
        elif arg.startswith("hydra.sweep.dir="):
            settings["dir"] = arg.partition("=")[2]
        elif arg.startswith("hydra/launcher="):
            settings.update(hydra_launcher(arg.partition("=")[2]))
        elif arg.startswith(("hydra/sweeper=", "hydra.sweeper.")):
            settings.update(hydra_sweeper(arg))
        elif arg.startswith("hydra.launcher.n_jobs="):
            settings["jobs"] = arg.partition("=")[2]
        elif arg.startswith("hydra.launcher."):
            key, _, value = arg.removeprefix("hydra.launcher.").partition("=")
            line_settings[key] = value
        elif arg.startswith(("hydra.run.dir=", "hydra.sweep.subdir=")):
            raise LeptonError(f"{arg.partition('=')[0]} is set by lepton sweep for each run; use --dir DIR for the sweep directory")
        else:
            grid.append(arg)
    options.grid = rewrite_overrides(grid)
    if "dir" in settings:
        options.sweep_dir = Path(str(settings["dir"])).expanduser()
    options.rank_by = str(settings.get("rank_by", options.rank_by))
    options.launcher = str(settings.get("launcher", options.launcher))
    options.jobs = _positive_int(settings.get("jobs", 1), "--jobs")
    if "optuna" in settings:
        options.optuna_trials = _positive_int(settings["optuna"], "--optuna")
    if settings.get("direction") == "minimize" and not options.rank_by.startswith("-"):
        options.rank_by = f"-{options.rank_by}"
    if options.launcher not in LAUNCHERS:
        raise LeptonError(f"unknown launcher {options.launcher!r}; choose local or slurm")
    from lepton_cli.slurm import launcher_settings

    options.launcher_settings = launcher_settings(options.launcher, settings.get("launcher_settings", {}), line_settings)
    if options.launcher == "slurm" and "jobs" in settings:
        options.launcher_settings.setdefault("array_parallelism", options.jobs)
    return options


def hydra_sweeper(arg: str) -> dict:
    """hydra-optuna-sweeper's spelling: `hydra/sweeper=optuna` (20 trials, its default) is `--optuna 20`,
    `hydra.sweeper.n_trials=N` is `--optuna N`, `hydra.sweeper.direction=minimize` ranks lowest first;
    `hydra/sweeper=basic` is a grid."""
    key, _, value = arg.partition("=")
    if key == "hydra/sweeper" and value in ("optuna", "basic"):
        return {"optuna": 20} if value == "optuna" else {}
    if key == "hydra.sweeper.n_trials":
        return {"optuna": value}
    if key == "hydra.sweeper.direction" and value in ("maximize", "minimize"):
        return {"direction": value}
    raise LeptonError(f"{arg}: lepton sweep understands hydra/sweeper=optuna|basic, hydra.sweeper.n_trials=N and "
                      "hydra.sweeper.direction=maximize|minimize (the rest of the search is --optuna's, see lepton sweep --help)")


def hydra_launcher(name: str) -> dict:
    """`hydra/launcher=NAME` as Hydra's launcher plugins spell it, in lepton sweep's settings."""
    if name not in HYDRA_LAUNCHERS:
        raise LeptonError(f"unknown hydra/launcher {name!r}; choose one of: {', '.join(HYDRA_LAUNCHERS)}")
    return dict(HYDRA_LAUNCHERS[name])


def _positive_int(value, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise LeptonError(f"{name} expects a positive whole number, got {value!r}")
    return number


def load_preset(name: str) -> tuple[list[str], dict]:
    """`conf/sweep/NAME.yaml`: `grid:` a list of override strings (as typed after `lepton sweep`),
    optional `rank_by:`, `jobs:`, `dir:`, `optuna:` (number of trials), and `launcher:` a mapping of
    SLURM settings (the hydra.launcher keys), used when the sweep runs with --launcher slurm."""
    import yaml

    folder = conf_dir() / "sweep"
    path = folder / f"{name}.yaml"
    presets = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    if not path.is_file():
        raise LeptonError(f"unknown sweep preset {name!r}; choose one of: {', '.join(presets) or '(none)'} (conf/sweep/)")
    data = yaml.safe_load(path.read_text()) or {}
    grid = data.get("grid") if isinstance(data, dict) else None
    unknown = set(data) - {"grid", "rank_by", "jobs", "dir", "optuna", "launcher"} if isinstance(data, dict) else set()
    if not isinstance(grid, list) or not all(isinstance(o, str) for o in grid) or unknown:
        raise LeptonError(f"{path} must hold `grid:` a list of override strings (and optionally rank_by, jobs, dir, optuna, "
                          "launcher)" + (f"; unknown keys: {', '.join(sorted(unknown))}" if unknown else ""))
    launcher = data.get("launcher") or {}
    if not isinstance(launcher, dict):
        raise LeptonError(f"{path}: `launcher:` must be a mapping of SLURM settings, e.g. partition: gpu")
    from lepton_cli.slurm import check_launcher_key

    for key in launcher:
        check_launcher_key(key, f"{path}: launcher.")
    settings = {k: v for k, v in data.items() if k not in ("grid", "launcher")}
    return grid, {**settings, "launcher_settings": launcher}


# ---- the grid -------------------------------------------------------------------------------------
def _parser():
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # With a config loader the parser can expand `glob()` against the options of a group.
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(conf_dir())))
    return OverridesParser.create(config_loader=loader)


def parse_grid(grid: list[str]):
    from hydra.errors import HydraException

    try:
        return _parser().parse_overrides(grid)
    except HydraException as error:
        raise LeptonError(f"could not read the sweep grid: {str(error).splitlines()[0]}; see lepton sweep --help") from None


def expand_grid(grid: list[str]) -> list[list[str]]:
    """Every job of the grid, in Hydra's order (BasicSweeper: the product of the sweeps, a later
    override of the same key replacing an earlier one). `glob()` over a group skips the shared
    `_*.yaml` files, which are not options."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    overrides = parse_grid(grid)
    for override in overrides:
        if override.is_sweep_override() and not override.is_discrete_sweep():
            raise LeptonError(f"{override.input_line}: a grid needs a list of values; intervals are for --optuna N")
    try:
        batches = BasicSweeper.split_arguments(overrides, None)[0]
    except HydraException as error:
        raise LeptonError(f"could not expand the sweep grid: {str(error).splitlines()[0]}") from None
    return [job for job in batches if not any(_is_shared_file(o) for o in job)]


def _is_shared_file(override: str) -> bool:
    """`method=_shared`: a `_*.yaml` file of a group holds shared settings, it is not an option."""
    key, _, value = override.lstrip("+~").partition("=")
    return value.startswith("_") and (key in USER_GROUPS.values() or key in GROUP_ALIASES.values())


def job_digest(overrides: list[str]) -> str:
    """sha1 of the run's composed config (interpolations unresolved, `hydra.*` left out): the same
    run whatever the order or spelling of its overrides, `method=source_only` written out or not."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(compose_job(tuple(overrides)), resolve=False)
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def varying_keys(jobs: list[list[str]]) -> list[str]:
    """Keys whose value differs between jobs, in grid order (seed last)."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    keys = [k for k, v in values.items() if len(v) > 1 or any(k not in dict(o.partition("=")[::2] for o in j) for j in jobs)]
    return sorted(keys, key=lambda k: k.lstrip("+") == "seed")


def run_name(overrides: list[str], keys: list[str], digest: str) -> str:
    settings = dict(o.partition("=")[::2] for o in overrides)
    label = "_".join(f"{k.split('.')[-1].split('@')[-1]}-{settings[k]}" for k in keys if k in settings)
    label = re.sub(r"[^A-Za-z0-9.-]+", "-", label)[:80].strip("-")
    return f"{label}_{digest}" if label else digest


def in_job(overrides) -> str:
    return f"(in the job {' '.join(overrides)})"


def check_jobs(jobs: list[list[str]]) -> None:
    """Each job's overrides checked like `lepton train` would (composes the config; no torch)."""
    from lepton_cli.overrides import check_overrides

    for job in jobs:
        try:
            check_overrides(job)
        except LeptonError as error:
            raise LeptonError(f"{error} {in_job(job)}") from None


# ---- runs -----------------------------------------------------------------------------------------
def read_result(run_dir: Path, rank_by: str) -> dict | None:
    """metrics.json if the run finished with finite metrics, else None."""
    from lepton_cli.reporting.leaderboard import rank_metric

    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    for key in ("target/acc", rank_metric(rank_by)[0]):
        value = metrics.get(key)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
    return metrics


def move_aside(run_dir: Path) -> Path:
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.old-{n}")).exists():
        n += 1
    run_dir.rename(aside)
    return aside


def find_run_dir(sweep_dir: Path, digest: str) -> Path | None:
    matches = [p for p in sweep_dir.glob(f"*{digest}") if p.is_dir() and (p.name == digest or p.name.endswith(f"_{digest}"))]
    return matches[0] if matches else None


def child_environment(keep_slurm: bool = False) -> dict[str, str]:
    """This process's environment for a training subprocess: no variables of a launch it is not part of.
    A task of a SLURM job keeps SLURM's task variables: Lightning takes its rank and world size from them."""
    dropped = {*LAUNCH_VARIABLES, "HYDRA_FULL_ERROR", "LEPTON_DEBUG", *(() if keep_slurm else SLURM_TASK_VARIABLES)}
    return {k: v for k, v in os.environ.items() if k not in dropped}


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def train_command(job: Job) -> list[str]:
    assert job.run_dir is not None
    return [sys.executable, "-m", "lepton_cli.train", *job.overrides, f"hydra.run.dir={_quoted(job.run_dir.resolve())}"]


def launch(job: Job, rank_by: str, rank: int = 0, keep_slurm: bool = False) -> dict | None:
    """Run one job to the end; returns its record (status ok / failed, metrics, error line). In a SLURM
    job every task runs it (one per rank, as srun started them); rank 0 reports, the others log to
    sweep_rank<N>.log and return None."""
    assert job.run_dir is not None
    job.run_dir.mkdir(parents=True, exist_ok=True)
    command = train_command(job)
    started = time.time()
    with (job.run_dir / ("sweep.log" if rank == 0 else f"sweep_rank{rank}.log")).open("w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        returncode = subprocess.run(command, check=False, stdout=log, stderr=subprocess.STDOUT,
                                    env=child_environment(keep_slurm), stdin=subprocess.DEVNULL).returncode
    if rank != 0:
        return None
    metrics = read_result(job.run_dir, rank_by) if returncode == 0 else None
    error = ""
    if returncode != 0:
        error = last_error_line(job.run_dir / "sweep.log") or f"exit code {returncode}"
    elif metrics is None:
        error = f"metrics.json missing or not finite (NaN?) for target/acc or {rank_by}"
    return save_record(job, returncode, round(time.time() - started, 2), metrics, error)


def save_record(job: Job, returncode: int | None, wall: float | None, metrics: dict | None, error: str) -> dict:
    """The record of a run that ended, written to its sweep.json; returned with its metrics."""
    assert job.run_dir is not None
    job.run_dir.mkdir(parents=True, exist_ok=True)  # a SLURM job may end (cancelled, failed) before it starts
    record = {"overrides": job.overrides, "digest": job.digest, "returncode": returncode, "wall_time_s": wall,
              "status": "ok" if metrics is not None else "failed", "error": error}
    (job.run_dir / "sweep.json").write_text(json.dumps(record, indent=2))
    return {**record, "metrics": metrics}


def last_error_line(log_path: Path) -> str:
    """The last line of the log that names an error, without Hydra's boilerplate around it."""
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(_HYDRA_NOISE)]
    for line in reversed(lines):
        if re.search(r"error|exception|nan|traceback", line, re.IGNORECASE):
            match = re.fullmatch(r"(\w+(?:Error|Exception))\((['\"])(.*)\2\)", line)
            return f"{match[1]}: {match[3]}" if match else line[:300]
    return lines[-1][:300] if lines else ""


def plan(jobs_overrides: list[list[str]], keys: list[str], sweep_dir: Path, options: Options) -> tuple[list[Job], list[Job]]:
    """Split the jobs into those to run and those already finished (moving stale run dirs aside)."""
    to_run, done = [], []
    for overrides in jobs_overrides:
        digest = job_digest(overrides)
        job = Job(overrides, digest, run_name(overrides, keys, digest))
        existing = find_run_dir(sweep_dir, digest)
        metrics = read_result(existing, options.rank_by) if existing else None
        if existing and metrics is not None and not options.force:
            job.run_dir = existing
            saved = _saved_record(existing)
            job.record = {"overrides": overrides, "status": "ok", "metrics": metrics, "error": "",
                          "wall_time_s": saved.get("wall_time_s", metrics.get("wall_time_s")), "run_dir": str(existing)}
            done.append(job)
            continue
        if existing:
            move_aside(existing)  # failed, cut off, or --force: keep the old results beside the new run
        job.run_dir = sweep_dir / job.name
        job.record = {"overrides": overrides, "status": "pending", "metrics": None, "run_dir": str(job.run_dir)}
        to_run.append(job)
    return to_run, done


def _saved_record(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "sweep.json").read_text())
    except (OSError, ValueError):
        return {}


def run_jobs(jobs: list[Job], options: Options, on_done, sweep_dir: Path) -> None:
    """Run the jobs, `options.jobs` at a time, calling `on_done(job)` as each one ends."""
    if options.launcher != "local":
        from lepton_cli.slurm import run_submitit_jobs

        return run_submitit_jobs(jobs, options, on_done, sweep_dir)
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = {pool.submit(launch, job, options.rank_by): job for job in jobs}
        try:
            for future in as_completed(futures):
                job = futures[future]
                job.record = {**future.result(), "run_dir": str(job.run_dir)}
                on_done(job)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# ---- the command ----------------------------------------------------------------------------------
class Sweep:
    """The state of one `lepton sweep` invocation: its jobs, their records, the leaderboard."""

    def __init__(self, options: Options, keys: list[str], sweep_dir: Path):
        self.options, self.keys, self.sweep_dir = options, keys, sweep_dir
        self.jobs: list[Job] = []
        self.finished = 0

    def refresh(self) -> list:
        from lepton_cli.reporting.leaderboard import build_leaderboard, write_leaderboard

        records = [{**job.record, "group": job.group} for job in self.jobs]
        rows = build_leaderboard(records, [k for k in self.keys if k.lstrip("+") != "seed"], self.options.rank_by)
        write_leaderboard(rows, self.sweep_dir, self.options.rank_by)
        return rows

    def report(self, job: Job, total: int) -> None:
        self.finished += 1
        record = job.record
        label = " ".join(o for o in job.overrides if o.partition("=")[0] in self.keys) or job.name
        if record["status"] == "ok":
            from lepton_cli.reporting.leaderboard import rank_metric

            metric = rank_metric(self.options.rank_by)[0]
            print(f"[{self.finished}/{total}] done    {label}: {metric} {record['metrics'][metric]:.4f} "
                  f"({record['wall_time_s']:.0f} s)", flush=True)
        else:
            print(f"[{self.finished}/{total}] FAILED  {label}: {record['error']} (log: {job.run_dir}/sweep.log)", flush=True)
        self.refresh()

    def summary(self) -> int:
        from lepton_cli.reporting.leaderboard import print_leaderboard

        rows = self.refresh()
        print_leaderboard(rows, self.options.rank_by)
        failed = [job for job in self.jobs if job.record.get("status") == "failed"]
        ok = sum(job.record.get("status") == "ok" for job in self.jobs)
        print(f"{ok} of {len(self.jobs)} runs finished, {len(failed)} failed. Leaderboard: {self.sweep_dir}/leaderboard.md "
              f"(.csv, .png). Resume or extend with --dir {self.sweep_dir}")
        if failed:
            print(f"lepton sweep: {len(failed)} run(s) failed; see their sweep.log", file=sys.stderr)
        return 1 if failed else 0


def default_sweep_dir() -> Path:
    return Path("runs") / "sweeps" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def grid_command(options: Options) -> int:
    jobs_overrides = expand_grid(options.grid)
    check_jobs(jobs_overrides)
    keys = varying_keys(jobs_overrides)
    sweep_dir = options.sweep_dir or default_sweep_dir()
    if options.launcher != "local":
        from lepton_cli.slurm import check_submitit_jobs

        check_submitit_jobs(jobs_overrides, options, sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(options, keys, sweep_dir)
    to_run, done = plan(jobs_overrides, keys, sweep_dir, options)
    sweep.jobs = sorted(to_run + done, key=lambda job: jobs_overrides.index(job.overrides))
    configs = len({job.group for job in sweep.jobs})
    print(f"lepton sweep: {len(jobs_overrides)} runs ({configs} configurations) in {sweep_dir}: "
          f"{len(to_run)} to run, {len(done)} already done", flush=True)
    _write_manifest(sweep_dir, options, sweep.jobs)
    sweep.refresh()
    try:
        run_jobs(to_run, options, lambda job: sweep.report(job, len(to_run)), sweep_dir)
    except KeyboardInterrupt:
        sweep.refresh()
        print(f"\nlepton sweep: interrupted; rerun with --dir {sweep_dir} to resume", file=sys.stderr)
        return 130
    return sweep.summary()


def _write_manifest(sweep_dir: Path, options: Options, jobs: list[Job]) -> None:
    manifest = {"grid": options.grid, "rank_by": options.rank_by,
                "runs": [{"overrides": job.overrides, "digest": job.digest, "run_dir": job.run_dir.name} for job in jobs]}
    (sweep_dir / "sweep.json").write_text(json.dumps(manifest, indent=2))


def optuna_command(options: Options) -> int:
    """Optuna's ask/tell loop: each trial is one job per seed, its value the mean of `--rank-by`."""
    try:
        import optuna
    except ImportError:
        raise LeptonError("--optuna needs Optuna, an optional extra: pip install lepton[search]") from None
    from lepton_cli.reporting.leaderboard import rank_metric

    overrides = parse_grid(options.grid)
    fixed, seeds, space = [], [None], {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(f"{key}={override.get_value_element_as_str()}")
        elif key.lstrip("+") == "seed" and override.is_discrete_sweep():
            seeds = [f"{key}={value}" for value in override.sweep_string_iterator()]
        elif override.is_discrete_sweep():
            space[key] = ("categorical", list(override.sweep_string_iterator()))
        else:
            sweep = override.value()
            kind = "int" if isinstance(sweep.start, int) and isinstance(sweep.end, int) else "float"
            space[key] = (kind, sweep.start, sweep.end, "log" in sweep.tags)
    if not space:
        raise LeptonError("--optuna needs a search space, e.g. 'method.lr=interval(1e-4,1e-1)' or method.lr=1e-3,1e-2")
    examples = [[*fixed, *(f"{k}={v[1] if v[0] != 'categorical' else v[1][0]}" for k, v in space.items())]]
    for key, spec in space.items():
        if spec[0] == "categorical":
            examples += [[o if not o.startswith(f"{key}=") else f"{key}={value}" for o in examples[0]] for value in spec[1][1:]]
    check_jobs([[*example, *([seeds[0]] if seeds[0] else [])] for example in examples])

    metric, sign = rank_metric(options.rank_by)
    keys = [*space, *([seeds[0].partition("=")[0]] if seeds[0] else [])]
    sweep_dir = options.sweep_dir or default_sweep_dir()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(options, keys, sweep_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if sign > 0 else "minimize", sampler=optuna.samplers.TPESampler(seed=0))
    print(f"lepton sweep: Optuna, {options.optuna_trials} trials × {len(seeds)} seed(s) maximising "
          f"{'-' if sign < 0 else ''}{metric} in {sweep_dir}", flush=True)
    total = options.optuna_trials * len(seeds)
    asked = 0
    try:
        while asked < options.optuna_trials:
            batch = [study.ask() for _ in range(min(max(1, options.jobs // len(seeds)), options.optuna_trials - asked))]
            asked += len(batch)
            trial_jobs, batch_to_run = [], []
            for trial in batch:
                params = [f"{key}={_suggest(trial, key, spec)}" for key, spec in space.items()]
                job_list = [[*fixed, *params, *([seed] if seed else [])] for seed in seeds]
                to_run, done = plan(job_list, keys, sweep_dir, options)  # a repeated trial reuses its runs
                trial_jobs.append((trial, to_run + done))
                sweep.jobs += to_run + done
                batch_to_run += to_run
                for job in done:
                    sweep.report(job, total)
            run_jobs(batch_to_run, options, lambda job: sweep.report(job, total), sweep_dir)
            for trial, jobs in trial_jobs:
                values = [job.record["metrics"][metric] for job in jobs if job.record.get("status") == "ok"]
                if len(values) == len(jobs):
                    study.tell(trial, sum(values) / len(values))
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except KeyboardInterrupt:
        sweep.refresh()
        print(f"\nlepton sweep: interrupted; rerun with --dir {sweep_dir} to reuse the finished trials", file=sys.stderr)
        return 130
    _write_manifest(sweep_dir, options, sweep.jobs)
    code = sweep.summary()
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if completed:
        print(f"best trial: {study.best_trial.params} → {metric} {study.best_value:.4f}")
    return code


def _suggest(trial, key: str, spec: tuple):
    if spec[0] == "categorical":
        return trial.suggest_categorical(key, spec[1])
    kind, low, high, log = spec
    if kind == "int":
        return trial.suggest_int(key, low, high, log=log)
    return repr(trial.suggest_float(key, low, high, log=log))


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(HELP, end="")
        return 0
    try:
        options = parse_args(argv)
        if options.launcher != "local":
            from lepton_cli.slurm import require_submitit

            require_submitit(options.launcher)
        if not options.grid and options.optuna_trials is None:
            raise LeptonError("nothing to sweep; give overrides such as method=source_only,dann seed=0,1 or sweep=PRESET")
        return optuna_command(options) if options.optuna_trials is not None else grid_command(options)
    except LeptonError as error:
        if os.environ.get("LEPTON_DEBUG") == "1":
            raise
        print(f"lepton: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
