"""`per_method:` in an experiment preset: the settings its protocol gives one method only.

A preset (conf/experiment/) fixes a benchmark's protocol while the method stays a free choice. Some
protocols differ per method (TLlib runs plain CDAN on digits, a larger bottleneck for MCC on Office),
so a preset writes them once, beside the rest, under the method's name:

    per_method:
      cdan: {entropy_conditioning: false}

Hydra's defaults list cannot choose a block by another group's choice inside one file, so the block
for the chosen `method.name` is merged into `method:` here: checked by `validate()` before any data is
read, and applied by `builders.method.build_method` before the method (or its teacher) is built, so
`config.yaml` and the checkpoint record the values that ran. A `method.KEY=VALUE` on the command
line still wins over the preset, as it wins over any other YAML.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from lepton_cli.errors import LeptonError


def method_overrides(overrides: Iterable[str]) -> set[str]:
    """The `method.*` keys (dotted, without `method.`) that these command-line overrides set."""
    keys = set()
    for override in overrides:
        key = str(override).partition("=")[0].lstrip("+~")
        if key.startswith("method."):
            keys.add(key.removeprefix("method."))
    return keys


def per_method_settings(values: Mapping, explicit: Iterable[str] = ()) -> dict[str, Any]:
    """{dotted key: value} that `per_method.<method.name>` sets, less the keys in `explicit` (set on the
    command line). One `LeptonError` for a block that is not a mapping or names a key the method lacks."""
    presets = values.get("per_method") or {}
    if not isinstance(presets, Mapping):
        raise LeptonError(f"per_method must map a method name to its settings, got {presets!r}; "
                          "e.g. per_method: {cdan: {entropy_conditioning: false}}")
    method = values.get("method") or {}
    block = presets.get(str(method.get("name")))
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise LeptonError(f"per_method.{method.get('name')} must be a mapping of method keys, got {block!r}")
    explicit = set(explicit)
    settings = {}
    for key, value in _leaves(block, ""):
        if not _has_key(method, key):
            raise LeptonError(f"per_method.{method.get('name')}.{key} is not a key of method={method.get('name')}; "
                              f"fix or remove it in the experiment preset (keys: {', '.join(sorted(method))})")
        if not any(key == e or key.startswith(e + ".") or e.startswith(key + ".") for e in explicit):
            settings[key] = value
    return settings


def with_per_method(values: dict, explicit: Iterable[str] = ()) -> dict:
    """A copy of the plain config `values` whose `method:` has the preset's settings merged in."""
    merged = copy.deepcopy(values)
    for key, value in per_method_settings(values, explicit).items():
        *parents, leaf = key.split(".")
        node = merged["method"]
        for part in parents:
            node = node[part]
        node[leaf] = value
    return merged


def apply_per_method(cfg: Any) -> None:
    """Merge `per_method.<method.name>` into `cfg.method` in place (a DictConfig; types enforced by the
    schema), leaving the keys the command line set."""
    from omegaconf import OmegaConf

    values = {key: OmegaConf.to_container(cfg[key], resolve=False) for key in ("per_method", "method") if key in cfg}
    for key, value in per_method_settings(values, command_line_method_keys(cfg)).items():
        OmegaConf.update(cfg.method, key, value, merge=True)


def command_line_method_keys(cfg: Any) -> set[str]:
    """The `method.*` keys set on this run's command line: read from the config's own `hydra:` node,
    else from Hydra's running app; none when neither is there (a config composed in Python)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig) and "hydra" in cfg:
        return method_overrides(OmegaConf.select(cfg, "hydra.overrides.task", default=None) or [])
    if HydraConfig.initialized():
        return method_overrides(HydraConfig.get().overrides.task)
    return set()


def _leaves(node: Mapping, prefix: str):
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, path)
        else:
            yield path, value


def _has_key(node: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
