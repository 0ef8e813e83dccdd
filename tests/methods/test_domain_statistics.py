"""Per-domain batch-norm statistics (methods/domain_statistics.py). adabn: the weights are
source-only's, each domain is normalised by its own statistics, the target's estimated from the
unlabelled target training images, and the checkpoint is the target model. pseudo_label with
`domain_statistics=true`: the same split of statistics under self-training."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lepton_cli.errors import as_lepton_error
from lepton_cli.methods.domain_statistics import BatchNormStatistics, batch_norms
from tests.conftest import TINY, compose_config
from tests.data.text_audio_fakes import modality_overrides
from tests.methods.leakage import assert_bitwise_equal, build, train_weights


def fit(method: str, *overrides: str, epochs: int = 2):
    """(datamodule, method) after `epochs` deterministic CPU epochs of TINY's 4 steps, validated after
    each (adabn estimates the target statistics before each validation and at the end)."""
    datamodule, module = build([f"method={method}", *overrides])
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, deterministic=True, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=1)
    trainer.fit(module, datamodule=datamodule)
    return datamodule, module


def test_swapping_statistics_rebinds_and_restores_the_tensors():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    norm = model[1]
    own = norm.running_mean
    spare = BatchNormStatistics(model)
    spare.running_mean_0.fill_(5.0)
    with spare.in_use():
        assert torch.equal(norm.running_mean, torch.full((4,), 5.0))
        model.train()
        model(torch.randn(8, 3)).sum().backward()  # the running statistics change inside; autograd is content
        assert norm.num_batches_tracked == 1
    assert norm.running_mean is own and torch.equal(own, torch.zeros(4))
    assert spare.num_batches_tracked_0 == 1 and not torch.equal(spare.running_mean_0, torch.full((4,), 5.0))


def test_weights_and_source_statistics_are_source_only_ones():
    _, adabn = fit("adabn")
    _, source_only = fit("source_only")
    adapted, plain = adabn.state_dict(), source_only.state_dict()
    statistics = {f"model.{name}.{kind}": f"source_statistics.{kind}_{index}"
                  for index, (name, _) in enumerate((n, m) for n, m in source_only.model.named_modules() if m in batch_norms(source_only.model))
                  for kind in ("running_mean", "running_var", "num_batches_tracked")}
    assert statistics, "the classifier has no batch norm to compare"
    for name, value in plain.items():
        assert torch.equal(adapted[statistics.get(name, name)], value), name
    # ... while the classifier's own statistics are the target's
    assert any(not torch.equal(adapted[name], plain[name]) for name in statistics if "running_mean" in name)


def test_target_statistics_are_those_of_the_target_training_images():
    datamodule, adabn = fit("adabn", "data.eval_batch_size=4096")  # one batch: the average is the exact mean
    images, labels = datamodule.splits["target_train"]
    assert (labels == -1).all()  # what the statistics pass reads has no labels to leak
    norm = batch_norms(adabn.model)[0]
    captured = []
    handle = norm.register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0].detach()))
    adabn.eval()
    with torch.no_grad():
        adabn.model(adabn.as_input(images))  # in eval mode the first norm's input does not depend on its statistics
    handle.remove()
    features = captured[0].transpose(0, 1).flatten(1)  # (channels, everything else)
    torch.testing.assert_close(norm.running_mean, features.mean(dim=1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(norm.running_var, features.var(dim=1), rtol=1e-4, atol=1e-5)  # unbiased, as BN keeps it


def test_source_is_evaluated_as_source_only_and_the_checkpoint_is_the_target_model(run_experiment, tmp_path):
    from lepton_cli.api import load_model

    adabn, run_dir = run_experiment("method=adabn", run_dir=tmp_path / "adabn")
    source_only, _ = run_experiment("method=source_only", run_dir=tmp_path / "source_only")
    assert adabn["source/acc"] == source_only["source/acc"]  # same weights, same (source) statistics
    model = load_model(run_dir)  # the checkpoint's own batch-norm buffers: the target statistics
    datamodule, _ = build(["method=adabn"])
    images, labels = datamodule.splits["target_test"]
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert accuracy == pytest.approx(adabn["target/acc"], abs=1e-6)


def test_target_train_labels_are_never_read():
    assert_bitwise_equal(train_weights(["method=adabn"], shuffle_target_train_labels=False),
                         train_weights(["method=adabn"], shuffle_target_train_labels=True))


def test_a_classifier_without_batch_norm_is_refused_in_one_line(tmp_path):
    from lepton_cli.train import run

    with pytest.raises(Exception) as raised:  # Hydra wraps it; `lepton train` prints the LeptonError as one line
        run(compose_config([*TINY, "method=adabn", "method.bottleneck_dim=null"], tmp_path / "run"))
    assert "no batch-norm layer" in str(as_lepton_error(raised.value)) and "bottleneck_dim" in str(raised.value)


DOMAIN_PSEUDO_LABEL = ["method=pseudo_label", "method.domain_statistics=true"]


def test_pseudo_label_with_domain_statistics_keeps_two_sets_and_never_reads_target_labels():
    datamodule, method = fit("pseudo_label", "method.domain_statistics=true")
    norm = batch_norms(method.model)[0]
    assert not torch.equal(norm.running_mean, method.source_statistics.running_mean_0)
    # Each domain had its own forward: the source set counted the source batches only (8 steps), the
    # classifier's own set was re-estimated from the target images at the end (one eval batch).
    assert method.source_statistics.num_batches_tracked_0 == 8
    assert norm.num_batches_tracked == -(-len(datamodule.splits["target_train"][1]) // 128)
    assert_bitwise_equal(train_weights(DOMAIN_PSEUDO_LABEL, shuffle_target_train_labels=False),
                         train_weights(DOMAIN_PSEUDO_LABEL, shuffle_target_train_labels=True))


def test_pseudo_label_with_domain_statistics_runs_on_audio(tmp_path):
    from lepton_cli.train import run

    overrides = [*modality_overrides("audio", tmp_path / "data"), *DOMAIN_PSEUDO_LABEL, "trainer.fast_dev_run=true",
                 "data.batch_size=8", "data.eval_batch_size=64", "logger=none", "report=false"]
    metrics = run(compose_config(overrides, tmp_path / "run"))
    assert metrics["method"] == "pseudo_label" and 0.0 <= metrics["target/acc"] <= 1.0
