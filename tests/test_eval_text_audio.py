"""`lepton eval`, `lepton report` and `api.load_model` read audio and bag-of-words runs as they read
image runs (the same weights give the run's own numbers); token runs, attacks on non-images, a data
set of another modality and `teacher.run=` of a non-image run each get one line."""

from __future__ import annotations

import pytest
import torch

from lepton_cli.errors import LeptonError
from lepton_cli.evaluate import evaluate
from tests.conftest import compose_config
from tests.data.text_audio_fakes import modality_overrides

SMALL = ["data.batch_size=8", "data.eval_batch_size=64", "data.steps_per_epoch=3", "trainer.max_epochs=1", "logger=none",
         "report=false"]


@pytest.fixture(scope="module", params=["audio", "features"])
def finished_run(request, tmp_path_factory):
    """(modality, metrics, run directory, data root) of a tiny run over the modality's fakes."""
    from lepton_cli.train import run

    root = tmp_path_factory.mktemp(f"{request.param}_data")
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    overrides = [*modality_overrides(request.param, root), *SMALL, "method=adabn"]
    return request.param, run(compose_config(overrides, run_dir)), run_dir, root


@pytest.fixture
def local_data(finished_run, monkeypatch):
    """eval and report read data from this machine's place (`$LEPTON_DATA`), never the checkpoint's."""
    monkeypatch.setenv("LEPTON_DATA", str(finished_run[3]))


def test_eval_reproduces_the_runs_target_metrics(finished_run, local_data, tmp_path):
    _modality, metrics, run_dir, _root = finished_run
    result = evaluate(str(run_dir / "checkpoints" / "last.ckpt"), output_dir=str(tmp_path), quiet=True)
    assert result["target/acc"] == pytest.approx(metrics["target/acc"], abs=1e-6)
    assert result["target/per_class_acc"] == pytest.approx(metrics["target/per_class_acc"], abs=1e-6)


def test_load_model_maps_raw_inputs_to_the_runs_predictions(finished_run, local_data):
    from lepton_cli.api import load_model
    from lepton_cli.builders.saved_model import evaluation_split, load_checkpoint, local_config

    _modality, metrics, run_dir, _root = finished_run
    config = local_config(load_checkpoint(run_dir / "checkpoints" / "last.ckpt"))
    inputs, labels, _ = evaluation_split(config, config["target"], metrics["classes"], "target")
    model = load_model(run_dir / "checkpoints" / "last.ckpt")
    with torch.no_grad():
        accuracy = (model(inputs).argmax(1) == labels).float().mean().item()
    assert accuracy == pytest.approx(metrics["target/acc"], abs=1e-6)


def test_report_draws_the_model_pictures(finished_run, local_data):
    from lepton_cli.report import regenerate_run

    regenerate_run(finished_run[2], tsne_points=20)
    assert (finished_run[2] / "report" / "confusion_matrix.png").stat().st_size > 0
    assert (finished_run[2] / "report" / "tsne.png").stat().st_size > 0


def test_what_cannot_be_read_gets_one_line(finished_run, local_data, tmp_path):
    from lepton_cli.train import run

    modality, _metrics, run_dir, root = finished_run
    checkpoint = str(run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(LeptonError, match=f"attack= perturbs images.*takes {modality} inputs"):
        evaluate(checkpoint, attack={"name": "fgsm", "eps": 0.1, "steps": 1, "step_size": None}, quiet=True)
    with pytest.raises(LeptonError, match=f"synth_digits is image data but the checkpoint was trained on {modality}"):
        evaluate(checkpoint, target="synth_digits", overrides=["data.eval_batch_size=64"], quiet=True,
                 output_dir=str(tmp_path))
    if modality == "audio":
        overrides = [*modality_overrides("audio", root), *SMALL, "method=distill", f"teacher.run={run_dir}"]
        with pytest.raises(LeptonError, match="teacher.run=.*audio inputs.*image runs only"):
            run(compose_config(overrides, tmp_path / "distill"))


def test_a_token_run_is_refused_in_one_line(tmp_path, monkeypatch):
    from lepton_cli.train import run

    root = tmp_path / "data"
    run(compose_config([*modality_overrides("tokens", root), *SMALL], tmp_path / "run"))
    monkeypatch.setenv("LEPTON_DATA", str(root))
    with pytest.raises(LeptonError, match="token run.*vocabulary.*metrics.json"):
        evaluate(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), quiet=True)
