"""Every method that is not image-specific runs on text (bag-of-words features and tokens) and on
speech, from `lepton train`'s config, over fakes in the real file formats; and none of them reads
the target training labels there either (bitwise, as for images: `leakage.py`)."""

from __future__ import annotations

import pytest

from lepton_cli.errors import LeptonError
from tests.conftest import compose_config
from tests.data.text_audio_fakes import modality_overrides
from tests.methods.leakage import assert_bitwise_equal, train_weights

MODALITIES = ["features", "tokens", "audio"]
METHODS = ["source_only", "adabn", "finetune", "distill", "pseudo_label", "dann", "cdan", "mcc", "vada"]
SMALL = ["data.batch_size=8", "data.eval_batch_size=64", "data.steps_per_epoch=3", "trainer.max_epochs=1",
         "logger=none", "report=false"]


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory) -> dict[str, list[str]]:
    """Per modality, the overrides of a tiny run over fakes written once for this module."""
    return {modality: [*modality_overrides(modality, tmp_path_factory.mktemp(modality)), *SMALL]
            for modality in MODALITIES}


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("method", METHODS)
def test_method_runs_fast_dev_run(fake_runs, tmp_path, modality, method):
    from lepton_cli.train import run

    cfg = compose_config([*fake_runs[modality], f"method={method}", "trainer.fast_dev_run=true"], tmp_path / "run")
    if modality == "tokens" and method == "vada":
        # VAT perturbs its input continuously: token ids have no such direction. One clear line.
        with pytest.raises(LeptonError, match="VAT.*needs float inputs.*amazon/"):
            run(cfg)
        return
    metrics = run(cfg)
    assert metrics["method"] == method and metrics["steps"] == 1
    assert 0.0 <= metrics["target/acc"] <= 1.0 and metrics["target/test_size"] > 0


@pytest.mark.parametrize("modality", MODALITIES)
def test_dann_never_reads_target_train_labels(fake_runs, modality):
    honest = train_weights(["method=dann"], shuffle_target_train_labels=False, base=fake_runs[modality])
    shuffled = train_weights(["method=dann"], shuffle_target_train_labels=True, base=fake_runs[modality])
    assert_bitwise_equal(honest, shuffled)


@pytest.mark.slow  # two short trainings each
@pytest.mark.parametrize(("modality", "method"), [(m, method) for m in MODALITIES for method in
                                                  ("source_only", "adabn", "distill", "pseudo_label", "cdan", "mcc", "vada")
                                                  if not (m == "tokens" and method == "vada")])
def test_other_methods_never_read_target_train_labels(fake_runs, modality, method):
    honest = train_weights([f"method={method}"], shuffle_target_train_labels=False, base=fake_runs[modality])
    shuffled = train_weights([f"method={method}"], shuffle_target_train_labels=True, base=fake_runs[modality])
    assert_bitwise_equal(honest, shuffled)
