"""Where the config tree lives, its groups, and the words users type for them.

Kept free of heavy imports: `lepton --help` and `lepton list` read only this module.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from lepton_cli.errors import LeptonError

# `source=` and `target=` choose from one set of data-set files, `teacher=` and `student=` from
# one set of backbones; Hydra spells such a choice `group@package=option`.
GROUP_ALIASES = {
    "source": "dataset@source",
    "target": "dataset@target",
    "teacher": "backbone@teacher",
    "student": "backbone@student",
}
USER_GROUPS = {
    "source": "dataset",
    "target": "dataset",
    "teacher": "backbone",
    "student": "backbone",
    "method": "method",
    "trainer": "trainer",
    "logger": "logger",
    "augment": "augment",
    "callbacks": "callbacks",
    "selection": "selection",
    "sweep": "sweep",
    "experiment": "experiment",
}
# `dataset@source` → `source`: the word a user types for a group spelled with its package.
USER_WORD = {alias: word for word, alias in GROUP_ALIASES.items()}
_ALIAS_PATTERN = re.compile(r"^([~+]{0,2})(" + "|".join(GROUP_ALIASES) + r")(=|$)")


def override_value(value: str | Path) -> str:
    """`value` as Hydra's override grammar reads it: as is when plain, else quoted (paths with spaces)."""
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conf_dir() -> Path:
    """The config tree to compose from, with its schema registered in Hydra's ConfigStore
    (conf/config.yaml merges `lepton_schema`, see lepton_cli/schema/): every composition goes
    through here, so none misses the schema."""
    from lepton_cli.schema import register

    register()
    return _tree()


@functools.cache
def _tree() -> Path:
    """`conf/` beside the package in a source checkout, `lepton_cli/conf` in an installed wheel.
    Reading the tree (`lepton list`) needs no schema and no Hydra import."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "conf", package / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"Lepton's config tree was not found next to {package}")


def rewrite_overrides(args: list[str]) -> list[str]:
    """`source=cifar10` → `dataset@source=cifar10`; everything else unchanged (idempotent)."""
    return [_ALIAS_PATTERN.sub(lambda m: f"{m[1]}{GROUP_ALIASES[m[2]]}{m[3]}", arg) for arg in args]


def group_options(group: str, user_dirs: tuple[Path, ...] = ()) -> dict[str, str]:
    """Options of a config group (a folder of conf/, and of each of the user's config directories)
    with the one-line description each file starts with. Files named `_x.yaml` hold shared settings
    and are not options. Files in sub-folders are options too, named as Hydra names them:
    `office31/amazon.yaml` is `source=office31/amazon`."""
    options = {}
    for root in (_tree(), *user_dirs):
        folder = root / USER_GROUPS.get(group, group)
        for path in sorted(folder.rglob("*.yaml")):
            name = path.relative_to(folder).with_suffix("").as_posix()
            if any(part.startswith("_") for part in name.split("/")):
                continue
            if name in options:  # Hydra would silently take the first one on its search path
                raise LeptonError(f"{path} has the name of another {group} option, {name!r}, and would never be used; "
                                  "rename your file")
            options[name] = _description(path)
    return options


def user_groups(user_dirs: tuple[Path, ...]) -> list[str]:
    """Groups only the user's config directories have (a folder of YAML files there, not in conf/)."""
    ours = {USER_GROUPS.get(word, word) for word in USER_GROUPS} | {p.name for p in _tree().iterdir() if p.is_dir()}
    return sorted({folder.name for root in user_dirs for folder in root.iterdir()
                   if folder.is_dir() and folder.name not in ours and next(folder.rglob("*.yaml"), None) is not None})


def searchpath_args(args: list[str]) -> list[str]:
    """The command line with `--config-dir DIR` (`-cd DIR`, `--config-dir=DIR`) turned into the
    override `hydra.searchpath=[file:///abs/DIR]` (added to a given one): the user's directories come
    after Lepton's tree, so they add options beside Lepton's and every check below sees them."""
    dirs, rest, given = [], [], []
    it = iter(args)
    for arg in it:
        flag, sep, value = arg.partition("=")
        if flag in ("--config-dir", "-cd"):
            value = value if sep else next(it, "")
            if not value.strip():  # Path("") would be the current directory
                raise LeptonError("--config-dir needs a directory after it, e.g. --config-dir myconf")
            dirs.append(value)
        elif is_searchpath(arg) and sep:
            given = _searchpath_entries(value)
        else:
            rest.append(arg)
    if not dirs and not given:
        return args
    for value in dirs:
        if not Path(value).expanduser().is_dir():
            raise LeptonError(f"--config-dir {value}: no such directory; give a folder of config groups "
                              "(e.g. myconf/ with myconf/method/mine.yaml)")
    entries = [*given, *(f"file://{Path(value).expanduser().resolve()}" for value in dirs)]
    return [*rest, f"hydra.searchpath=[{','.join(override_value(entry) for entry in entries)}]"]


def user_config_dirs(overrides: list[str]) -> tuple[Path, ...]:
    """The directories a `hydra.searchpath=[...]` override adds (file:// paths, plain paths and
    pkg:// packages), each checked to exist."""
    value = next((o.partition("=")[2] for o in overrides if is_searchpath(o)), None)
    if value is None:
        return ()
    dirs = []
    for entry in _searchpath_entries(value):
        if entry.startswith("pkg://"):
            import importlib.util

            module = entry.removeprefix("pkg://").replace("/", ".")
            try:
                spec = importlib.util.find_spec(module) if module else None
            except (ImportError, ValueError):  # a missing parent package
                spec = None
            # Only a package is a folder of configs; a plain module has no search locations.
            locations = list(spec.submodule_search_locations or []) if spec else []
            path = Path(locations[0]) if locations else None
        else:
            path = Path(entry.removeprefix("file://")).expanduser()
        if path is None or not path.is_dir():
            raise LeptonError(f"hydra.searchpath: {entry} is not a directory; give file://DIR (or --config-dir DIR)")
        dirs.append(path.resolve())
    return tuple(dirs)


def _searchpath_entries(value: str) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        entries = OverridesParser.create().parse_override(f"hydra.searchpath={value}").value()
    except HydraException:
        entries = None
    if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        raise LeptonError(f"hydra.searchpath={value} is not a list of directories; e.g. hydra.searchpath=[file:///home/me/conf]")
    return entries


def _description(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @"):
            return line.lstrip("# ").strip()
        if line.strip() and not line.startswith("#"):
            break
    return ""


@functools.cache
def compose_job(overrides: tuple[str, ...]):
    """The experiment config one run would get from these overrides (`hydra.*` ones left out,
    interpolations unresolved), composed without running anything."""
    from hydra import compose, initialize_config_dir

    job = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/")) or is_searchpath(o)]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=job)


def compose_run(overrides: list[str], run_dir: Path):
    """The config `lepton train OVERRIDES hydra.run.dir=RUN_DIR` would run, composed in this process
    (for `train.run` in tests and in-process benchmarks), with Hydra's runtime set up so that
    `${hydra:runtime.output_dir}` resolves."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    run_dir.mkdir(parents=True, exist_ok=True)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=rewrite_overrides(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.run.dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def is_searchpath(override: str) -> bool:
    return override.partition("=")[0].lstrip("+~") == "hydra.searchpath"


def close_names(word: str, names, count: int = 6) -> list[str]:
    """Names a mistyped `word` may have meant: those it starts (`resnet5` → resnet50, resnet50d),
    then the nearest by edit distance."""
    import difflib

    names = sorted(set(names))
    starting = sorted((name for name in names if name.startswith(word)), key=len) if word else []
    near = difflib.get_close_matches(word, names, n=count, cutoff=0.6)
    return list(dict.fromkeys([*starting[:count], *near]))[:count]
