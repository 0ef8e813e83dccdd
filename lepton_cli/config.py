"""Where the config tree lives, its groups, and the words users type for them.

Kept free of heavy imports: `lepton --help` and `lepton list` read only this module.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

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


def group_options(group: str) -> dict[str, str]:
    """Options of a config group (a folder of conf/) with the one-line description each file
    starts with. Files named `_x.yaml` hold shared settings and are not options. Files in
    sub-folders are options too, named as Hydra names them: `office31/amazon.yaml` is
    `source=office31/amazon`."""
    folder = _tree() / USER_GROUPS.get(group, group)
    options = {}
    for path in sorted(folder.rglob("*.yaml")):
        name = path.relative_to(folder).with_suffix("").as_posix()
        if not any(part.startswith("_") for part in name.split("/")):
            options[name] = _description(path)
    return options


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

    job = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=job)
