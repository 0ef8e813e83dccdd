"""dann, cdan, mcc and vada: they run end to end, never read target training labels, and DANN's
discriminator is trained adversarially through reversed gradients on the λ schedule."""

from __future__ import annotations

import itertools

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from lepton_cli.losses import dann_coefficient
from lepton_cli.methods import CDAN, DANN, MCC, VADA
from lepton_cli.methods.vada import batch_norm_stats_frozen
from lepton_cli.models.backbones import SmallCNN
from tests.conftest import TINY, compose_config
from tests.methods.leakage import assert_bitwise_equal, build, shuffle_labels_on_load, train_weights

METHODS = ["dann", "cdan", "mcc", "vada"]


@pytest.mark.parametrize("method", METHODS)
def test_method_runs_fast_dev_run(run_experiment, method):
    metrics, run_dir = run_experiment(f"method={method}", "trainer.fast_dev_run=true", "report=false")
    assert metrics["method"] == method and metrics["steps"] == 1
    assert 0.0 <= metrics["target/acc"] <= 1.0
    assert (run_dir / "metrics.json").exists()


@pytest.mark.slow  # two short trainings
@pytest.mark.parametrize("method", METHODS)
def test_target_train_labels_are_never_read(method):
    honest = train_weights([f"method={method}"], shuffle_target_train_labels=False)
    shuffled = train_weights([f"method={method}"], shuffle_target_train_labels=True)
    assert_bitwise_equal(honest, shuffled)


def test_shuffled_labels_are_what_an_unmasked_loader_would_yield(tmp_path):
    # The check above proves nothing unless the shuffle reaches the labels a cheating method
    # could read: reveal them all (as a labelled method would see them) and compare.
    from lepton_cli.builders.data import build_datamodule

    def target_train(shuffle: bool) -> tuple[torch.Tensor, torch.Tensor]:
        datamodule = build_datamodule(compose_config([*TINY, "method=dann"], tmp_path))
        datamodule.target_labels_per_class = 10**6  # every target training label, unmasked
        datamodule.target_val_fraction = 0.0  # none held out (the held-out slice's labels are hidden)
        if shuffle:
            shuffle_labels_on_load(datamodule.target)
        datamodule.setup()
        return datamodule.splits["target_train"]

    (honest_images, honest_labels), (shuffled_images, shuffled_labels) = target_train(False), target_train(True)
    assert torch.equal(honest_images, shuffled_images) and (honest_labels >= 0).all()
    assert not torch.equal(honest_labels, shuffled_labels)
    assert torch.equal(honest_labels.sort().values, shuffled_labels.sort().values)


CALLED_WITHOUT_TRAINER = pytest.mark.filterwarnings("ignore:You are trying to `self.log")


@CALLED_WITHOUT_TRAINER
@pytest.mark.parametrize("method_class", [DANN, CDAN, MCC, VADA])
def test_usable_from_python_with_a_users_batch(method_class):
    method = method_class(backbone=SmallCNN(), num_classes=10)
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (8,))
    loss = method.training_step({"source": (images, labels), "target": (images.flip(-1), labels)}, 0)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(p.grad is not None for p in method.model.head.parameters())


@CALLED_WITHOUT_TRAINER
def test_dann_discriminator_gets_reversed_gradients_in_a_training_step(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setattr(DANN, "progress", property(lambda self: 0.3))
    method = DANN(backbone=SmallCNN(), num_classes=10)
    captured = {}

    def keep_features(module, inputs, output):
        captured["features"], captured["transfer"] = inputs, output

    method.domain_adversary.register_forward_hook(keep_features)
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    method.training_step({"source": (images[:8], torch.arange(8)), "target": (images[8:], torch.full((8,), -1))}, 0)
    coeff = dann_coefficient(0.3)
    assert method.domain_adversary.coeff == pytest.approx(coeff) and coeff > 0.5

    # The discriminator's own loss on the very same features, with no reversal in the way.
    source_features, target_features = captured["features"]
    domain_logits = method.domain_adversary.discriminator(torch.cat([source_features, target_features])).squeeze(1)
    domain_labels = torch.cat([torch.ones(8), torch.zeros(8)])
    discriminator_loss = F.binary_cross_entropy_with_logits(domain_logits[:8], domain_labels[:8]) / 2 \
        + F.binary_cross_entropy_with_logits(domain_logits[8:], domain_labels[8:]) / 2
    assert captured["transfer"].item() == pytest.approx(discriminator_loss.item(), rel=1e-5)

    backbone = list(method.model.backbone.parameters())
    discriminator = list(method.domain_adversary.discriminator.parameters())
    via_training_step = torch.autograd.grad(captured["transfer"], backbone + discriminator, retain_graph=True)
    plain = torch.autograd.grad(discriminator_loss, backbone + discriminator)
    for got, want in zip(via_training_step[:len(backbone)], plain[:len(backbone)]):
        # The features climb the discriminator's loss: -λ times its gradient.
        torch.testing.assert_close(got, -coeff * want, rtol=1e-4, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in via_training_step[:len(backbone)])
    for got, want in zip(via_training_step[len(backbone):], plain[len(backbone):]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)  # the discriminator descends it


def test_dann_lambda_follows_the_schedule_from_zero():
    seen = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(pl_module.domain_adversary.coeff)

    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         callbacks=[Record()])
    datamodule, method = build(["method=dann"])
    trainer.fit(method, datamodule=datamodule)
    total = trainer.estimated_stepping_batches
    assert total == 4 and len(seen) == 4  # TINY: 4 steps an epoch
    assert seen[0] == 0.0
    assert seen == pytest.approx([dann_coefficient(step / total) for step in range(total)])
    assert all(a < b for a, b in itertools.pairwise(seen))


def test_vat_forwards_leave_batch_norm_running_stats_alone():
    method = VADA(backbone=SmallCNN(), num_classes=10)
    bn = method.model.bottleneck[1]
    before = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    images = torch.randn(8, 1, 28, 28)
    with batch_norm_stats_frozen(method.model):
        method.model(images)
    assert bn.track_running_stats
    assert all(torch.equal(a, b) for a, b in zip(before, (bn.running_mean, bn.running_var, bn.num_batches_tracked)))
    method.model(images)  # outside the block batch norm updates its statistics as usual
    assert not torch.equal(before[0], bn.running_mean)


def vat_direction_in_training(method: VADA, view: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """The direction of the adversarial perturbation VADA's VAT applies: read off the input of its
    last forward, x + eps · d."""
    inputs = []
    hook = method.model.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach().float()))
    torch.manual_seed(seed)
    method.vat(view)
    hook.remove()
    return ((inputs[-1] - view) / method.vat_eps).flatten(1)


def test_vada_adversarial_direction_under_bf16_autocast_is_the_float32_one():
    # The 1e-3 probe is below bfloat16's resolution: computed under autocast the direction is noise
    # (cosine ~0.2 to float32's before the fix). No dropout, so that the probe alone moves the prediction.
    torch.manual_seed(0)
    method = VADA(backbone=SmallCNN(dropout=0.0), num_classes=10).train()
    view = method.view(torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8))
    float32 = vat_direction_in_training(method, view)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = vat_direction_in_training(method, view)
        assert method.vat(view).dtype == torch.float32
    assert F.cosine_similarity(bf16, float32).min() > 0.9
