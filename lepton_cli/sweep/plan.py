"""What a sweep runs: the grid expanded into jobs, each checked like `lepton train` would, and an
Optuna search space with its ask/tell steps.

The grid is expanded with Hydra's own override parser and BasicSweeper (through hydra_private.py),
so comma lists, `range()`, `choice()` and `glob()` mean what Hydra documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lepton_cli.config import GROUP_ALIASES, USER_GROUPS, conf_dir
from lepton_cli.errors import LeptonError
from lepton_cli.sweep.hydra_private import overrides_parser, split_sweep


def parse_grid(grid: list[str]) -> list:
    from hydra.errors import HydraException

    try:
        return overrides_parser(conf_dir()).parse_overrides(grid)
    except HydraException as error:
        raise LeptonError(f"could not read the sweep grid: {str(error).splitlines()[0]}; see lepton sweep --help") from None


def expand_grid(grid: list[str]) -> list[list[str]]:
    """Every job of the grid, in Hydra's order (BasicSweeper: the product of the sweeps, a later
    override of the same key replacing an earlier one). `glob()` over a group skips the shared
    `_*.yaml` files, which are not options."""
    from hydra.errors import HydraException

    overrides = parse_grid(grid)
    for override in overrides:
        if override.is_sweep_override() and not override.is_discrete_sweep():
            raise LeptonError(f"{override.input_line}: a grid needs a list of values; intervals are for --optuna N")
    try:
        jobs = split_sweep(overrides)
    except HydraException as error:
        raise LeptonError(f"could not expand the sweep grid: {str(error).splitlines()[0]}") from None
    return [job for job in jobs if not any(_is_shared_file(o) for o in job)]


def _is_shared_file(override: str) -> bool:
    """`method=_shared`: a `_*.yaml` file of a group holds shared settings, it is not an option."""
    key, _, value = override.lstrip("+~").partition("=")
    return value.startswith("_") and (key in USER_GROUPS.values() or key in GROUP_ALIASES.values())


def is_seed(key: str) -> bool:
    return key.lstrip("+") == "seed"


def varying_keys(jobs: list[list[str]]) -> list[str]:
    """Keys whose value differs between jobs, in grid order (seed last)."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    keys = [k for k, v in values.items() if len(v) > 1 or any(k not in dict(o.partition("=")[::2] for o in j) for j in jobs)]
    return sorted(keys, key=is_seed)


def chooses_oracle(overrides) -> bool:
    """Whether the overrides choose the validator that reads the target labels (`selection=oracle`)."""
    return any(key.lstrip("+~") == "selection" and value == "oracle" for key, _, value in (o.partition("=") for o in overrides))


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


# ---- Optuna ---------------------------------------------------------------------------------------
@dataclass
class SearchSpace:
    """An Optuna search read from the grid: fixed overrides, the seeds every trial runs, and per key
    ("categorical", values) or (kind "int"/"float", low, high, log)."""

    fixed: list[str] = field(default_factory=list)
    seeds: list[str | None] = field(default_factory=lambda: [None])
    space: dict[str, tuple] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        """The leaderboard's columns: the searched keys, then seed when there are seeds."""
        return [*self.space, *([self.seeds[0].partition("=")[0]] if self.seeds[0] else [])]

    def examples(self) -> list[list[str]]:
        """Jobs that try every categorical value once, to check before the first trial."""
        first = [*self.fixed, *(f"{k}={v[1] if v[0] != 'categorical' else v[1][0]}" for k, v in self.space.items())]
        examples = [first]
        for key, spec in self.space.items():
            if spec[0] == "categorical":
                examples += [[o if not o.startswith(f"{key}=") else f"{key}={value}" for o in first] for value in spec[1][1:]]
        return [[*example, *([self.seeds[0]] if self.seeds[0] else [])] for example in examples]

    def jobs(self, trial) -> list[list[str]]:
        """One job per seed for an Optuna trial, its values asked from the trial."""
        params = [f"{key}={_suggest(trial, key, spec)}" for key, spec in self.space.items()]
        return [[*self.fixed, *params, *([seed] if seed else [])] for seed in self.seeds]


def search_space(grid: list[str]) -> SearchSpace:
    """'key=interval(lo,hi)', 'key=tag(log,interval(lo,hi))', 'key=int(interval(a,b))' and lists are
    searched; `seed=0,1` runs every seed per trial; everything else is fixed."""
    result = SearchSpace()
    for override in parse_grid(grid):
        key = override.get_key_element()
        if not override.is_sweep_override():
            result.fixed.append(f"{key}={override.get_value_element_as_str()}")
        elif is_seed(key) and override.is_discrete_sweep():
            result.seeds = [f"{key}={value}" for value in override.sweep_string_iterator()]
        elif override.is_discrete_sweep():
            result.space[key] = ("categorical", list(override.sweep_string_iterator()))
        else:
            sweep = override.value()
            kind = "int" if isinstance(sweep.start, int) and isinstance(sweep.end, int) else "float"
            result.space[key] = (kind, sweep.start, sweep.end, "log" in sweep.tags)
    if not result.space:
        raise LeptonError("--optuna needs a search space, e.g. 'method.lr=interval(1e-4,1e-1)' or method.lr=1e-3,1e-2")
    return result


def _suggest(trial, key: str, spec: tuple):
    if spec[0] == "categorical":
        return trial.suggest_categorical(key, spec[1])
    kind, low, high, log = spec
    if kind == "int":
        return trial.suggest_int(key, low, high, log=log)
    return repr(trial.suggest_float(key, low, high, log=log))


def optuna_study(sign: int):
    """An Optuna study that maximises (sign 1) or minimises the ranking key; one line if Optuna is missing."""
    try:
        import optuna
    except ImportError:
        raise LeptonError("--optuna needs Optuna, an optional extra: pip install lepton-transfer[search]") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize" if sign > 0 else "minimize", sampler=optuna.samplers.TPESampler(seed=0))


def tell(study, trial, values: list[float | None]) -> None:
    """A trial's value is the mean over its seeds; a trial with a failed seed is FAIL."""
    import optuna

    if values and all(value is not None for value in values):
        study.tell(trial, sum(values) / len(values))
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
