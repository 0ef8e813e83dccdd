"""Check command-line overrides before anything runs, so mistakes get one clear line.

Hydra's own messages span several lines and exit with 1; here every problem becomes a
`LeptonError` that names the valid choices or the fix.
"""

from __future__ import annotations

from lepton_cli.config import GROUP_ALIASES, USER_GROUPS, compose_job, conf_dir, group_options
from lepton_cli.errors import LeptonError

HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                          "--config-dir", "-cd", "--experimental-rerun", "--shell-completion", "-sc", "--info", "-i"}
_USER_WORD = {alias: word for word, alias in GROUP_ALIASES.items()}


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


def check_overrides(args: list[str]) -> None:
    """Compose the config with the overrides (no torch import) and turn failures into one line."""
    flags, overrides = split_flags(args)
    if any(flag in ("-m", "--multirun", "--help", "-h", "--hydra-help", "--shell-completion", "-sc") for flag in flags):
        return  # sweeps and help are checked by their own commands
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except HydraException as error:
        raise LeptonError(f"could not read the overrides: {str(error).splitlines()[0]}; write them as key=value") from None
    for override in parsed:
        # `source=x` arrives as `dataset@source=x`: key_or_group 'dataset', package 'source'.
        group = _group_of(f"{override.key_or_group}@{override.package}" if override.package else override.key_or_group)
        if group and override.value() is not None and not override.is_delete():
            options = group_options(group)
            if override.value() not in options:
                raise LeptonError(f"unknown {group} {override.value()!r}; choose one of: {', '.join(options)} "
                                  f"(`lepton list {group}` describes them)")
    job = [(text, o) for text, o in zip(overrides, parsed) if not o.key_or_group.startswith(("hydra.", "hydra/"))]
    choices = [text for text, o in job if _group_of(o.get_key_element().lstrip("+~")) or "/" in o.key_or_group]
    values = [o for text, o in job if text not in choices]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        try:
            # Defaults of the chosen groups, before values are overridden: the types to check against.
            _check_types(compose("config", overrides=choices), values)
        except HydraException as error:
            raise LeptonError(_one_line(error)) from None
    try:
        compose_job(tuple(text for text, _ in job))  # cached: a sweep's resume hash reuses it
    except HydraException as error:
        raise LeptonError(_one_line(error)) from None


def _group_of(key: str) -> str | None:
    word = _USER_WORD.get(key, key)
    return word if word in USER_GROUPS else None


def _one_line(error: Exception) -> str:
    text = str(error) or str(error.__cause__ or type(error).__name__)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "is not in struct" in text or "Could not override" in text:
        key = text.split("'")[1] if "'" in text else "?"
        return (f"unknown key {key!r}; check its spelling (`lepton train --cfg job` prints every key) "
                f"or add a new key with +{key}=VALUE")
    return "; ".join(lines[:2])


def _check_types(defaults, overrides) -> None:
    """A number where a number is expected, a bool where a bool is (e.g. `method.lr=abc` fails here)."""
    from omegaconf import OmegaConf

    for override in overrides:
        if override.is_delete() or override.is_add():
            continue
        key, value = override.key_or_group, override.value()
        default = OmegaConf.select(defaults, key, throw_on_missing=False)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
            expected = "true or false"
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            expected = "a number"
        else:
            continue
        if not ok:
            raise LeptonError(f"{key} expects {expected}, got {value!r}; e.g. {key}={default}")
