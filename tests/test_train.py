"""One experiment end to end: run directory contents, metrics, determinism and safety."""

from __future__ import annotations

import json

import pytest

from lepton_cli.errors import LeptonError
from tests.conftest import TINY
from tests.helpers.cli import run_cli


def test_run_writes_config_metrics_checkpoints_and_logs(run_experiment):
    metrics, run_dir = run_experiment("logger=csv")
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for domain in ("target", "source"):
        for key in ("acc", "f1_macro", "recall_macro"):
            assert 0.0 <= on_disk[f"{domain}/{key}"] <= 1.0
        assert len(on_disk[f"{domain}/per_class_acc"]) == 10
    assert on_disk["classes"] == [str(d) for d in range(10)]
    assert on_disk["steps"] == 4
    assert (run_dir / "config.yaml").read_text().count("synth_digits") >= 1
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "logs" / "metrics.csv").is_file()


def test_same_seed_same_metrics_different_seed_differs(run_experiment, tmp_path):
    first, _ = run_experiment("seed=3", run_dir=tmp_path / "a")
    second, _ = run_experiment("seed=3", run_dir=tmp_path / "b")
    other, _ = run_experiment("seed=4", run_dir=tmp_path / "c")
    keys = [k for k in first if k.startswith(("target/", "source/"))]
    assert {k: first[k] for k in keys} == {k: second[k] for k in keys}
    assert any(first[k] != other[k] for k in keys)


def test_finished_run_directory_is_never_overwritten(run_experiment, tmp_path):
    _, run_dir = run_experiment(run_dir=tmp_path / "done")
    before = (run_dir / "metrics.json").read_bytes()
    with pytest.raises(LeptonError, match="already holds a finished run"):
        run_experiment(run_dir=run_dir)
    assert (run_dir / "metrics.json").read_bytes() == before


def test_training_improves_on_chance(run_experiment):
    metrics, _ = run_experiment("data.steps_per_epoch=120", "data.batch_size=32", "method.lr=0.05")
    assert metrics["source/acc"] > 0.4  # 10 classes: chance is 0.1


def test_cli_train_debug_end_to_end(tmp_path):
    run_dir = tmp_path / "cli_run"
    result = run_cli("train", "trainer=debug", *TINY, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["method"] == "source_only" and metrics["source"] == "synth_digits" and metrics["target"] == "digits"
    assert "target test" in result.stdout and "accuracy" in result.stdout  # the rich results table


@pytest.mark.slow
def test_compiled_classifier_trains_and_keeps_plain_checkpoint_names(run_experiment):
    import torch

    metrics, run_dir = run_experiment("trainer.compile=true", "trainer.fast_dev_run=true")
    assert 0.0 <= metrics["target/acc"] <= 1.0
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert "model.head.weight" in state and not any("_orig_mod" in key for key in state)


def test_fast_path_gives_the_same_run_as_the_dataloader_path(run_experiment, tmp_path):
    fast, _ = run_experiment("data.fast_path=on", run_dir=tmp_path / "fast")
    ordinary, _ = run_experiment("data.fast_path=off", run_dir=tmp_path / "ordinary")
    keys = [k for k in fast if k.startswith(("target/", "source/"))]
    # Both draw the same random permutation of indices, so the runs are identical on CPU.
    assert {k: fast[k] for k in keys} == {k: ordinary[k] for k in keys}
