"""Check command-line overrides before anything runs, so mistakes get one clear line.

Hydra's own messages span several lines and exit with 1; here every problem becomes a
`LeptonError` that names the valid choices or the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lepton_cli.config import (
    USER_GROUPS,
    USER_WORD,
    close_names,
    conf_dir,
    group_options,
    is_searchpath,
    user_config_dirs,
    user_groups,
)
from lepton_cli.errors import LeptonError
from lepton_cli.schema import validate
from lepton_cli.schema.settings import NOT_TRAINER_ARGUMENTS, TRAINER_FIELDS, trainer_parameters

HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                          "--config-dir", "-cd", "--experimental-rerun", "--shell-completion", "-sc", "--info", "-i"}


def split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """Separate Hydra's flags (`--cfg job`, `-m`, ...) from `key=value` overrides."""
    flags, overrides = [], []
    it = iter(args)
    for arg in it:
        if arg.startswith("-") and not arg.startswith("--") or arg.startswith("--"):
            flags.append(arg)
            if arg in HYDRA_FLAGS_WITH_VALUE and "=" not in arg:
                flags.append(next(it, ""))
        else:
            overrides.append(arg)
    return flags, overrides


# Hydra runs one of these modes per command line and answers two of them with a traceback.
MODE_FLAGS = {"-m": "--multirun", "--multirun": "--multirun", "-c": "--cfg", "--cfg": "--cfg", "-i": "--info",
              "--info": "--info", "-sc": "--shell-completion", "--shell-completion": "--shell-completion",
              "-r": "--run", "--run": "--run"}


def check_flags(flags: list[str]) -> None:
    modes = list(dict.fromkeys(MODE_FLAGS[flag.partition("=")[0]] for flag in flags if flag.partition("=")[0] in MODE_FLAGS))
    if len(modes) > 1:
        raise LeptonError(f"{modes[0]} and {modes[1]} cannot be given together; e.g. `lepton train --cfg job ...` prints "
                          "the config of one run, `lepton sweep ...` runs a grid")


def trainer_overrides(overrides: list[str]) -> list[str]:
    """`trainer.X=V` for any argument X of `pytorch_lightning.Trainer`, as Lightning users write it:
    Hydra would want `+trainer.X=V` for a key conf/trainer/ does not set, and refuse it for one a
    preset sets (`strategy` in trainer=ddp), so such an override becomes `++trainer.X=V` (set or add)."""
    rewritten = []
    for override in overrides:
        key, sep, _ = override.partition("=")
        name = key.removeprefix("trainer.")
        if sep and key != name and "." not in name and name not in TRAINER_FIELDS and name in trainer_parameters():
            override = f"++{override}"
        rewritten.append(override)
    return rewritten


def check_overrides(args: list[str]):
    """Compose the config with the overrides (no torch import), check it with `schema.validate`, and
    turn failures into one line. Returns that config with its `hydra` node (None for -m and help):
    `hydra.run.dir` in it resolves to the directory the run will get."""
    flags, overrides = split_flags(args)
    if any(flag in ("-m", "--multirun", "--help", "-h", "--hydra-help", "--shell-completion", "-sc") for flag in flags):
        return None  # sweeps and help are checked by their own commands
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    overrides = trainer_overrides(overrides)
    user_dirs = user_config_dirs(overrides)
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except HydraException as error:
        raise LeptonError(f"could not read the overrides: {str(error).splitlines()[0]}; write them as key=value") from None
    for override in parsed:
        # `source=x` arrives as `dataset@source=x`: key_or_group 'dataset', package 'source'.
        group = _group_of(f"{override.key_or_group}@{override.package}" if override.package else override.key_or_group,
                          user_dirs)
        if group and override.value() is not None and not override.is_delete():
            options = group_options(group, user_dirs)
            if override.value() not in options:
                raise LeptonError(f"unknown {group} {override.value()!r}; choose one of: {', '.join(options)} "
                                  f"(`lepton list {group}` describes them)")
    # One composition (with Hydra's own node, for hydra.run.dir): types are enforced by the schema
    # while composing; ranges and the values that belong together are checked by validate().
    # Hydra's settings other than the run directory (launcher, sweeper) are checked by their commands.
    job = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/")) or o.startswith("hydra.run.")
           or is_searchpath(o)]
    try:
        cfg = _compose(job)
    except HydraException as error:
        raise LeptonError(_type_error(error, job) or _one_line(error)) from None
    with _hydra_runtime(cfg):
        validate(cfg, on_this_machine=False)  # the GPU and checkpoint files are checked where the run starts
    return cfg


def _group_of(key: str, user_dirs=()) -> str | None:
    word = USER_WORD.get(key, key)
    return word if word in USER_GROUPS or (user_dirs and word in user_groups(user_dirs)) else None


def _one_line(error: Exception) -> str:
    text = str(error) or str(error.__cause__ or type(error).__name__)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "is not in struct" in text or "Could not override" in text:
        key = text.split("'")[1] if "'" in text else "?"
        name = key.removeprefix("trainer.")
        if key != name and "." not in name:
            close = close_names(name, trainer_parameters() | NOT_TRAINER_ARGUMENTS)
            return (f"unknown key {key!r}: not an argument of pytorch_lightning.Trainer"
                    + (f"; close names: {', '.join(f'trainer.{c}' for c in close)}" if close else "")
                    + " (`lepton train --cfg job` prints every key)")
        return (f"unknown key {key!r}; check its spelling (`lepton train --cfg job` prints every key) "
                f"or add a new key with +{key}=VALUE")
    return "; ".join(lines[:2])
def _type_error(error: Exception, overrides: list[str]) -> str | None:
    """`data.batch_size=big` → "data.batch_size expects a number ..." from the schema's type of the key."""
    import types
    import typing

    from omegaconf.errors import ValidationError

    cause = error.__cause__
    if not isinstance(cause, ValidationError) or not cause.full_key:
        return None
    key = cause.full_key
    try:
        expected = typing.get_type_hints(cause.object_type).get(cause.key) if cause.object_type else None
    except (NameError, TypeError):
        expected = None
    optional = typing.get_origin(expected) in (typing.Union, types.UnionType)
    expected = next((a for a in typing.get_args(expected) if a is not type(None)), expected) if optional else expected
    words = {float: "a number", int: "a number (a whole one)", bool: "true or false", str: "a string"}
    if expected not in words:
        return None
    given = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=", 1)[0] == key), cause.value)
    kind = "a list " if str(given).startswith("[") else "a dict " if str(given).startswith("{") else ""
    example = _default_of(key, [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != key])
    return (f"{key} expects {words[expected]}{' or null' if optional else ''}, got {kind}{given if kind else repr(given)}; "
            + (f"e.g. {key}={str(example).lower() if isinstance(example, bool) else example}" if example is not None
               else f"set {key}=VALUE"))


def _compose(overrides: list[str]):
    """The config with Hydra's node (as the run will see it, before Hydra writes anything)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def _default_of(key: str, overrides: list[str]):
    """The value `key` has without the user's override: the example in a type error's message."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(_compose(overrides), key, throw_on_resolution_failure=False)
    except HydraException:
        return None
    return value if isinstance(value, (bool, int, float)) or (isinstance(value, str) and "${" not in value) else None


@contextlib.contextmanager
def _hydra_runtime(cfg) -> Iterator[None]:
    """Hydra's runtime node as a run would see it, so `${hydra:runtime.output_dir}` resolves."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = "${hydra.run.dir}"  # resolved (and its errors reported) by validate()
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(cfg)
    try:
        yield
    finally:
        hydra_config.cfg = previous
