"""`lepton sweep`'s command line: options, presets (conf/sweep/), Hydra's sweeper and launcher
spellings, and `main`."""

from __future__ import annotations

import sys
from pathlib import Path

from lepton_cli.config import conf_dir, rewrite_overrides
from lepton_cli.errors import LeptonError, one_line_errors
from lepton_cli.reporting.leaderboard import ranking
from lepton_cli.sweep.options import Options
from lepton_cli.sweep.slurm import check_launcher_key, launcher_settings, require_submitit

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
                     rerun the same command with the same --dir to resume: finished runs are skipped.
                     One sweep at a time per directory; runs still training elsewhere are left alone
  --force            rerun finished runs too (old run directories are moved to <dir>.old-<n>)
  --jobs N           run N jobs at once (default 1; with --launcher slurm: at most N per job array)
  --rank NAME        how configurations are ranked (also --rank-by):
                       selection   (default) the unsupervised score of the selection= validator, for the
                                   epoch it picked; reads no target labels
                       oracle      target accuracy of the epoch the target labels pick
                       target/acc  target accuracy of the last epoch
                       KEY         any metrics.json key ('-KEY' ranks lowest first)
                     A ranking on target labels is labelled "oracle (uses target labels)": in real
                     unsupervised adaptation there are none.
  --optuna N         search instead of a grid: N Optuna trials optimising --rank (by default the
                     selection score) over 'key=interval(lo,hi)', 'key=tag(log,interval(lo,hi))',
                     'key=int(interval(a,b))' and lists; `seed=0,1` runs every seed per trial
                     (needs pip install lepton-transfer[search])
  --launcher NAME    local (default): subprocesses on this machine; slurm: one SLURM job per run, each
                     with trainer.num_nodes nodes and trainer.devices tasks (and GPUs) per node
                     (needs pip install lepton-transfer[cluster]; Ctrl-C cancels the jobs)
  hydra/sweeper=optuna               the same as --optuna 20 (hydra.sweeper.n_trials=N: --optuna N;
                     hydra.sweeper.direction=minimize ranks lowest first)
  hydra/launcher=submitit_slurm      the same as --launcher slurm (joblib, basic: local)
  hydra.launcher.KEY=VALUE           a SLURM setting, named as in hydra-submitit-launcher: partition,
                     timeout_min, mem_gb, cpus_per_task, account, qos, constraint, array_parallelism,
                     additional_parameters, ...; hydra.launcher.n_jobs=N is --jobs N

writes into the sweep directory: one directory per run (with sweep.log, its output), and
leaderboard.csv, leaderboard.md (rewritten after each run), leaderboard.png (at most every 30 s, and at the end).
Ctrl-C, SIGTERM or the end of the sweep's process stops its local trainings.
Exit code: 0 when every run finished, 1 when a run failed, 2 for a mistake in the command,
130 after Ctrl-C.

examples:
  lepton sweep method=source_only,dann seed=0,1,2
  lepton sweep method=dann method.lr=1e-3,3e-3,1e-2 'method.trade_off=range(0.1,1.1,0.3)'
  lepton sweep sweep=methods_digits --jobs 2 --dir runs/sweeps/methods
  lepton sweep --optuna 20 method=dann 'method.lr=tag(log,interval(1e-4,1e-1))'
  lepton sweep --rank oracle method=source_only,dann seed=0,1,2    (research only: uses target labels)
  lepton sweep --launcher slurm hydra.launcher.partition=gpu hydra.launcher.timeout_min=120 \\
      trainer=ddp trainer.devices=4 method=dann,cdan seed=0,1,2
"""

# `hydra/launcher=NAME` as Hydra's launcher plugins spell it. The local launcher plays joblib's role
# (parallel local jobs) with subprocesses, so that DDP runs work (joblib + ddp fails).
HYDRA_LAUNCHERS = {"basic": {"launcher": "local", "jobs": 1}, "joblib": {"launcher": "local"},
                   "submitit_slurm": {"launcher": "slurm"}, "submitit_local": {"launcher": "submitit_local"}}
LAUNCHERS = ("local", "slurm", "submitit_local")  # submitit_local: submitit on this machine, for tests
PRESET_KEYS = ("grid", "rank_by", "jobs", "dir", "optuna", "launcher")
_VALUE_OPTIONS = {"--dir": "dir", "--jobs": "jobs", "--rank": "rank_by", "--rank-by": "rank_by", "--optuna": "optuna",
                  "--launcher": "launcher"}


def parse_args(argv: list[str]) -> Options:
    options, settings, grid, line_settings = Options(), {}, [], {}
    it = iter(argv)
    for arg in it:
        name, _, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _VALUE_OPTIONS:
            value = inline or next(it, None)
            if value is None:
                raise LeptonError(f"{name} needs a value (see lepton sweep --help)")
            settings[_VALUE_OPTIONS[name]] = value
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
    ranking(options.rank_by)  # a bad name fails here, before anything runs
    if options.launcher not in LAUNCHERS:
        raise LeptonError(f"unknown launcher {options.launcher!r}; choose local or slurm")
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
    optional `rank_by:` (as --rank), `jobs:`, `dir:`, `optuna:` (number of trials), and `launcher:` a
    mapping of SLURM settings (the hydra.launcher keys), used when the sweep runs with --launcher slurm."""
    import yaml

    folder = conf_dir() / "sweep"
    path = folder / f"{name}.yaml"
    presets = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    if not path.is_file():
        raise LeptonError(f"unknown sweep preset {name!r}; choose one of: {', '.join(presets) or '(none)'} (conf/sweep/)")
    data = yaml.safe_load(path.read_text()) or {}
    grid = data.get("grid") if isinstance(data, dict) else None
    unknown = set(data) - set(PRESET_KEYS) if isinstance(data, dict) else set()
    if not isinstance(grid, list) or not all(isinstance(o, str) for o in grid) or unknown:
        raise LeptonError(f"{path} must hold `grid:` a list of override strings (and optionally rank_by, jobs, dir, optuna, "
                          "launcher)" + (f"; unknown keys: {', '.join(sorted(unknown))}" if unknown else ""))
    launcher = data.get("launcher") or {}
    if not isinstance(launcher, dict):
        raise LeptonError(f"{path}: `launcher:` must be a mapping of SLURM settings, e.g. partition: gpu")
    for key in launcher:
        check_launcher_key(key, f"{path}: launcher.")
    settings = {k: v for k, v in data.items() if k not in ("grid", "launcher")}
    return grid, {**settings, "launcher_settings": launcher}


def _command(argv: list[str]) -> int:
    from lepton_cli.sweep.session import default_sweep_dir, grid_command, optuna_command

    options = parse_args(argv)
    if options.launcher != "local":
        require_submitit(options.launcher)  # before the grid is even composed
    if not options.grid and options.optuna_trials is None:
        raise LeptonError("nothing to sweep; give overrides such as method=source_only,dann seed=0,1 or sweep=PRESET")
    options.sweep_dir = options.sweep_dir or default_sweep_dir()
    code, _ = optuna_command(options) if options.optuna_trials is not None else grid_command(options)
    return code


@one_line_errors
def main(argv: list[str]) -> int:
    """`lepton sweep ARGS`; returns the exit code (a mistake: one line on stderr, 2)."""
    if argv[:1] in (["-h"], ["--help"]):
        print(HELP, end="")
        return 0
    return _command(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
