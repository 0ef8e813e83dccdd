"""Shared fixtures: compose Lepton's config in-process and run tiny experiments.

Runs use small synthetic sets and a few steps so the suite stays fast on 2 CPU cores; the data
cache lives in a per-session temp folder so tests never touch ~/.cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Few steps, few images: every test that trains uses these unless it overrides them.
TINY = [
    "source.train_size=300", "source.test_size=100",
    "data.batch_size=16", "data.eval_batch_size=128", "data.steps_per_epoch=4",
    "trainer.max_epochs=1", "logger=none", "report=false",
]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("lepton_cache")
    old = os.environ.get("LEPTON_CACHE")
    os.environ["LEPTON_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("LEPTON_CACHE", None)
    else:
        os.environ["LEPTON_CACHE"] = old


def compose_config(overrides: list[str], run_dir: Path):
    """The config `lepton train OVERRIDES hydra.run.dir=RUN_DIR` would run, with Hydra's runtime
    set up so that `${hydra:runtime.output_dir}` resolves."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from lepton_cli.config import conf_dir, rewrite_overrides

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


@pytest.fixture
def run_experiment(tmp_path):
    """Train and test one tiny experiment in-process; returns (metrics, run_dir)."""
    from lepton_cli.train import run

    def _run(*overrides: str, tiny: bool = True, run_dir: Path | None = None):
        run_dir = run_dir or tmp_path / "run"
        cfg = compose_config([*(TINY if tiny else []), *overrides], run_dir)
        return run(cfg), run_dir

    return _run
