"""Run directories: a finished run is never overwritten, an interrupted one is continued only
with `resume=DIR`, and `resume=DIR` turns into the overrides the run was started with.

`prepare_args` runs before Hydra parses the command line (so a refused command writes nothing);
`check_run_dir` runs again inside the Hydra app, once the directory is resolved.
"""

from __future__ import annotations

import os
from pathlib import Path

from lepton_cli.checkpoints import last_checkpoint
from lepton_cli.config import USER_WORD, override_value
from lepton_cli.distributed import is_child_rank
from lepton_cli.errors import LeptonError
from lepton_cli.io import is_locked

INSPECT_FLAGS = ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "-m", "--multirun",
                 "--shell-completion", "-sc")


def _value_of(args: list[str], key: str) -> str | None:
    """The value the last `key=VALUE` gives, as Hydra reads it (`hydra.run.dir='my runs/a'` → my runs/a)."""
    found = None
    for arg in args:
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+~") == key:
            found = value
    if found and found[0] in "'\"" and "${" not in found:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import HydraException

        try:
            found = str(OverridesParser.create().parse_override(f"{key}={found}").value())
        except HydraException:
            raise LeptonError(f"could not read {key}={found}; quote the whole value once, e.g. {key}='my runs/a'") from None
    return found


def _key_of(arg: str) -> str:
    return arg.partition("=")[0].lstrip("+~")


def prepare_args(args: list[str], composed=None) -> list[str]:
    """The command line with the run directory settled before Hydra writes anything into it.

    - `resume=DIR` → the overrides DIR was started with (read as data, see `saved_overrides`), then
      the new ones, `hydra.run.dir=DIR`, and `hydra.output_subdir=null`: Hydra does not rewrite the
      run's `.hydra/`; `record_overrides` does, once every check has passed.
    - otherwise the run directory Hydra would use is resolved now (interpolations, `..`, symlinks)
      and pinned as `hydra.run.dir=`, so what is checked (a finished run, an interrupted one, an
      unwritable place, the file-system root) is what Hydra then writes to. `composed` is the
      config of these overrides with its `hydra` node, when the caller has it already.
    """
    if any(arg in ("-m", "--multirun") for arg in args):
        check_multirun_dir(args)
    if any(arg.split("=")[0] in INSPECT_FLAGS for arg in args):
        return args
    child = is_child_rank()  # rank 0 checks and locks the directory; every rank gets the same command line
    resume = _value_of(args, "resume")
    if resume:
        run_dir = Path(resume).expanduser().resolve()
        if not child:
            check_not_in_use(run_dir)
            check_resumable(run_dir)
        given = [a for a in args if _key_of(a) not in ("resume", "hydra.run.dir", "hydra.output_subdir")]
        saved = saved_overrides(run_dir, given={_key_of(a) for a in given},
                                searchpath=[a for a in given if _key_of(a) == "hydra.searchpath"])
        return [*saved, *given, f"resume={override_value(run_dir)}", f"hydra.run.dir={override_value(run_dir)}",
                "hydra.output_subdir=null"]
    if child:
        return args
    run_dir = resolve_run_dir(args, composed)
    check_not_in_use(run_dir)
    check_writable(run_dir)
    check_run_dir(run_dir, resuming=False)
    return [*(a for a in args if _key_of(a) != "hydra.run.dir"), f"hydra.run.dir={override_value(run_dir)}"]


def check_multirun_dir(args: list[str]) -> None:
    """`lepton train -m` writes each job's `.hydra/` before a job could refuse a finished run: an
    explicit sweep directory that holds runs already is refused up front (`lepton sweep --dir`
    resumes sweeps, locks them and skips finished runs)."""
    value = _value_of(args, "hydra.sweep.dir")
    if not value or "${" in value:
        return
    sweep_dir = Path(os.path.realpath(Path(value).expanduser()))
    if sweep_dir.is_dir() and next(sweep_dir.rglob("metrics.json"), None) is not None:
        raise LeptonError(f"hydra.sweep.dir={value} already holds finished runs; choose a new directory, or resume the "
                          f"sweep with `lepton sweep --dir {sweep_dir} ...` (nothing was overwritten)")


def run_dir_of(args: list[str]) -> Path | None:
    """The pinned run directory of a prepared command line (None for `--cfg`, `-m`, ...)."""
    if any(arg.split("=")[0] in INSPECT_FLAGS for arg in args):
        return None
    value = _value_of(args, "hydra.run.dir")
    return Path(value) if value and "${" not in value else None


def resolve_run_dir(args: list[str], composed=None) -> Path:
    """The absolute run directory Hydra would make of these overrides (its `${now:...}` taken now)."""
    value = _value_of(args, "hydra.run.dir")
    if value is None or "${" in value:
        value = (_select_run_dir(composed) if composed is not None
                 else _compose_run_dir([a for a in args if not a.startswith("-")]))
    if not value.strip():
        raise LeptonError("hydra.run.dir is empty; give a directory, e.g. hydra.run.dir=runs/my_run")
    path = Path(os.path.realpath(Path(value).expanduser()))
    if path == path.parent or path == Path.home().resolve():
        raise LeptonError(f"hydra.run.dir={value} is {path}, not a directory of its own; choose a new one, "
                          "e.g. hydra.run.dir=runs/my_run")
    return path


def _compose_run_dir(overrides: list[str]) -> str:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from lepton_cli.config import conf_dir

    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return _select_run_dir(compose("config", overrides=overrides, return_hydra_config=True))
    except HydraException as error:
        raise _unresolvable(error) from None


def _select_run_dir(composed) -> str:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        value = OmegaConf.select(composed, "hydra.run.dir")
    except OmegaConfBaseException as error:
        raise _unresolvable(error) from None
    if not isinstance(value, str):
        raise LeptonError(f"hydra.run.dir must be a path, got {value!r}; e.g. hydra.run.dir=runs/my_run")
    return value


def _unresolvable(error: Exception) -> LeptonError:
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return LeptonError(f"could not resolve hydra.run.dir: {first}; give a plain path, e.g. hydra.run.dir=runs/my_run")


# Keys whose values are places on disk: taken from a run directory they would make Lepton read or
# write where the directory's author chose, so a resume takes them from the command line only.
# What sends a run's metrics and config off the machine: a shared run directory may not choose it
# (W&B uploads unless logger.wandb.offline=true; MLflow does with a tracking_uri other than its local file).
REMOTE_LOGGERS = ("wandb",)
REMOTE_LOGGER_KEYS = ("logger.wandb.", "logger.mlflow.tracking_uri")
PLACE_KEYS = ("root", "cache_dir", "download", "dirpath", "save_dir", "default_root_dir", "checkpoint", "path",
              "test_path", "run")


def saved_overrides(run_dir: Path, given: set[str] = frozenset(), searchpath: list[str] = ()) -> list[str]:
    """The overrides a run was started with (`.hydra/overrides.yaml`) that the command line does not
    set again (`given` keys), read as data: a shared run directory is someone else's file, so only
    what Lepton's config knows is taken (see `check_saved_overrides`), never passed to Hydra unchecked.
    `searchpath`: the command line's `hydra.searchpath=` (from `--config-dir`), whose options count too."""
    import yaml

    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LeptonError(f"resume={run_dir}: {path} is unreadable ({type(error).__name__}); restore it or start "
                          "the run again without resume=") from None
    if loaded is None:
        return []
    if not isinstance(loaded, list) or not all(isinstance(item, str) for item in loaded):
        raise LeptonError(f"resume={run_dir}: {path} is not a list of overrides; restore it or start the run again "
                          "without resume=")
    kept = [o for o in loaded if _key_of(o) not in ("resume", *given)]
    check_saved_overrides(kept, f"resume={run_dir}: {path}", searchpath)
    return kept


def check_saved_overrides(overrides: list[str], where: str, searchpath: list[str] = ()) -> None:
    """Only Lepton's own settings: choices among the options of Lepton's groups, or of the config
    directories the command line names (`searchpath`: the user's own, given again on resume) — at
    their own place, no `@package` moves, no paths out of those trees — and plain values for keys the config has —
    not Hydra's settings, `_target_`-like keys, interpolations, deletions, new keys outside
    `trainer.`, a node set to null, or places on disk (`PLACE_KEYS`: give those on the command line)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import DictConfig, OmegaConf

    from lepton_cli.config import USER_GROUPS, conf_dir, group_options, user_config_dirs, user_groups

    def refuse(text: str, why: str, fix: str = "remove that line or start the run again without resume=") -> LeptonError:
        return LeptonError(f"{where} holds {text!r}, which {why}; Lepton takes only its own settings from a run "
                           f"directory: {fix}")

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        raise LeptonError(f"{where} holds overrides that cannot be read; restore it or start the run again "
                          "without resume=") from None
    user_dirs = user_config_dirs(list(searchpath))
    groups = {folder.name for root in (conf_dir(), *user_dirs) for folder in root.iterdir() if folder.is_dir()}
    choices, values = [], []
    for text, override in zip(overrides, parsed):
        key = override.key_or_group
        if key.startswith("hydra") or override.is_delete():
            raise refuse(text, "changes Hydra itself or deletes Lepton's settings")
        if key in groups or "/" in key or override.package is not None:
            spelled = f"{key}@{override.package}" if override.package is not None else key
            group = USER_WORD.get(spelled, spelled)
            if (override.package is not None and spelled not in USER_WORD) \
                    or (group not in USER_GROUPS and group not in user_groups(user_dirs)) \
                    or (override.is_add() and group not in user_groups(user_dirs)) \
                    or override.value() not in group_options(group, user_dirs):
                raise refuse(text, "is not one of Lepton's options for one of its groups")
            if group == "logger" and override.value() in REMOTE_LOGGERS:
                raise refuse(text, "would send this run's metrics and config to an online service under your account",
                             f"give {text} again on the command line if you mean to")
            choices.append(text)
            continue
        if any(part.startswith("_") for part in key.split(".")):
            raise refuse(text, "would make Hydra build or call something")
        if not _is_plain(override.value()):
            raise refuse(text, "is not a plain value (an interpolation, a sweep or an object)")
        if key.startswith(REMOTE_LOGGER_KEYS):
            raise refuse(text, "configures an online logging service", f"give {key}= again on the command line if you mean to")
        if key.rsplit(".", 1)[-1] in PLACE_KEYS:
            raise refuse(text, "names a place on disk", f"give {key}= again on the command line if you trust it")
        values.append((text, override))
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        try:
            known = compose("config", overrides=[*choices, *searchpath])
        except HydraException:
            raise LeptonError(f"{where} holds group choices this Lepton cannot compose; start the run again without "
                              "resume=") from None
    for text, override in values:
        key = override.key_or_group
        current = OmegaConf.select(known, key, default="<missing>", throw_on_missing=False)
        added = override.is_add() or override.is_force_add()  # `trainer.X=` of any Trainer argument is saved as ++
        if current == "<missing>" and not (added and key.startswith("trainer.") and key.count(".") == 1):
            raise refuse(text, "sets a key Lepton's config does not have")
        if isinstance(current, DictConfig) and override.value() is None:
            raise refuse(text, "switches off a part of Lepton's config")


def _is_plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    if isinstance(value, str):
        return "${" not in value
    return isinstance(value, (int, float, bool, type(None)))


def record_overrides(run_dir: Path, overrides: list[str]) -> None:
    """After a resume's checks passed: the overrides the run now continues with, for the next resume."""
    import yaml

    from lepton_cli.io import write_atomically

    kept = [o for o in overrides if _key_of(o) != "resume"]
    write_atomically(run_dir / ".hydra" / "overrides.yaml", yaml.safe_dump(kept, default_flow_style=False))


def check_not_in_use(run_dir: Path) -> None:
    if is_locked(run_dir):
        raise LeptonError(f"{run_dir} is in use by another Lepton process (a run is still training there); wait for "
                          "it to finish or stop it first (nothing was changed)")


def check_resumable(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise LeptonError(f"resume={run_dir}: no such run directory; give the directory of the interrupted run "
                          "(runs/<date>_<time>_...)")
    if (run_dir / "metrics.json").exists():
        raise LeptonError(f"resume={run_dir}: that run already finished (metrics.json exists); nothing to resume")
    if not last_checkpoint(run_dir).is_file():
        raise LeptonError(f"resume={run_dir}: no checkpoints/last.ckpt there (the run stopped before its first "
                          "checkpoint); start it again in a new directory: the same command without resume= "
                          "and without hydra.run.dir=")


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    """A finished run is never overwritten; an interrupted one only continued with resume=. Each
    refusal names one way out, and the two never send the user to each other."""
    if (run_dir / "metrics.json").exists():
        raise LeptonError(f"{run_dir} already holds a finished run; choose a new hydra.run.dir (nothing was overwritten)")
    if resuming:
        return
    if last_checkpoint(run_dir).is_file():
        raise LeptonError(f"{run_dir} holds an interrupted run; continue it with `lepton train resume={run_dir.resolve()}` "
                          "or choose a new hydra.run.dir (nothing was overwritten)")
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")):
        raise LeptonError(f"{run_dir} holds checkpoints of a run that cannot be resumed (no last.ckpt); choose a new "
                          "hydra.run.dir (nothing was overwritten)")


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
