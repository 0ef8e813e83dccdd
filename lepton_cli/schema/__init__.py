"""The config's schema: the type and valid range of every shared key, declared once, beside the key.

The YAML files in conf/ hold the values; the dataclasses here hold the types and ranges. They are
registered in Hydra's ConfigStore (`register()`, called by `config.conf_dir()`), and conf/config.yaml
merges them after the YAML (`- lepton_schema` and `- optional schema/method@method: ${method}` at
the end of its defaults list). So OmegaConf enforces the types while composing: `method.lr=abc`
fails there, with every command and test that composes the config. Schema fields default to `???`
(MISSING): merged after the YAML, they take its values and add only their types.

Groups whose keys differ per option (source/target, student/teacher, augment, logger, callbacks,
selection) stay free-form. A typed node refuses Hydra's `~key` (delete): set such a key to null instead; a method's own keys are checked when its option has a class in
`METHOD_SCHEMAS` (registered as `schema/method/<option>`).

Ranges live beside each field, as `Annotated` metadata (`lr: Annotated[float, POSITIVE] = MISSING`),
read by one generic function in `validate(cfg)`,
which also holds the checks that need several values together, the run directory, and (on the
machine that trains) the accelerator and checkpoint files.

To add a key: add it to the YAML with its value, then a field here, typed, with its rule when it
has one, e.g. `warmup: Annotated[float, FRACTION_BELOW_ONE] = MISSING`. A key only some options have (an
optimiser's `momentum`) goes into its class's `WHEN_PRESENT`, which is checked only where the key exists.

Modules: `rules` (the range rules and the one function that reads them), `settings` (the root,
data and trainer dataclasses), `methods` (each method's dataclass, `METHOD_SCHEMAS`) and
`checks` (`validate`).
"""

from __future__ import annotations

import functools

from lepton_cli.schema.checks import validate
from lepton_cli.schema.methods import METHOD_SCHEMAS, MethodSettings, PseudoLabelSettings
from lepton_cli.schema.settings import DataSettings, LeptonConfig

__all__ = ["DataSettings", "MethodSettings", "PseudoLabelSettings", "register", "validate"]


@functools.cache
def register() -> None:
    """Put the schema into Hydra's ConfigStore, where conf/config.yaml's defaults list finds it."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="lepton_schema", node=LeptonConfig)
    for option, schema in METHOD_SCHEMAS.items():
        store.store(group="schema/method", name=option, node=schema)
