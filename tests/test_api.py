"""`lepton_cli.api`: the README's "Python API" block runs as written, `train` returns the metrics
of the run it made and turns a mistake into the CLI's one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lepton_cli import api
from lepton_cli.errors import LeptonError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL)[1]


@pytest.mark.slow
def test_the_readme_example_trains_loads_pseudo_labels_and_attacks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the run directory lands under ./runs
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102 - our own README, the point of the test
    metrics = namespace["metrics"]
    run_dir = Path(metrics["run_dir"])
    assert run_dir.parent == tmp_path / "runs" and (run_dir / "metrics.json").is_file()
    assert metrics["method"] == "mcc" and metrics["steps"] == 20 and 0 <= metrics["target/acc"] <= 1
    assert namespace["model"].classes == metrics["classes"]
    assert (namespace["adversarial"] - namespace["images"]).abs().max() <= 0.1 + 1e-6
    assert "confident pseudo-labels; PGD (eps 0.1) flips" in capsys.readouterr().out


def test_train_turns_a_mistake_into_the_clis_one_line(tmp_path):
    with pytest.raises(LeptonError, match=r"method.lr must be > 0") as error:
        api.train(["method=mcc", "method.lr=-1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run" / "metrics.json").exists()
    with pytest.raises(LeptonError, match="list of KEY=VALUE strings"):
        api.train("method=mcc")  # type: ignore[arg-type]


def test_train_does_not_hand_the_callers_launch_variables_to_the_run(tmp_path, monkeypatch):
    """Called on a torchrun/SLURM rank (a notebook in an allocation), the run must not take itself for
    one rank of that launch and wait for the others."""
    import subprocess

    seen = {}

    def fake_run(command, **kwargs):
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(command, 1, stderr="lepton: error: stopped here\n")

    for name, value in {"LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_PORT": "29500", "SLURM_PROCID": "1",
                        "LEPTON_TEST_KEPT": "yes"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(api.subprocess, "run", fake_run)
    with pytest.raises(LeptonError, match="stopped here"):
        api.train(["method=mcc", f"hydra.run.dir={tmp_path / 'run'}"])
    assert seen["LEPTON_TEST_KEPT"] == "yes"
    assert not {"LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "SLURM_PROCID"} & set(seen)
