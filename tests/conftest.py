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
    from lepton_cli.config import compose_run

    return compose_run(overrides, run_dir)


@pytest.fixture
def run_experiment(tmp_path):
    """Train and test one tiny experiment in-process; returns (metrics, run_dir)."""
    from lepton_cli.train import run

    def _run(*overrides: str, tiny: bool = True, run_dir: Path | None = None):
        run_dir = run_dir or tmp_path / "run"
        cfg = compose_config([*(TINY if tiny else []), *overrides], run_dir)
        return run(cfg), run_dir

    return _run
