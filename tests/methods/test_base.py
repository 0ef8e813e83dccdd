"""What every method inherits: the backbone's learning rate, the names of the evaluation splits,
the test sizes in the results, and that fine-tuning is never tested on its labelled images."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lepton_cli.methods import FineTune, SourceOnly
from lepton_cli.models.backbones import FeatureExtractor, SmallCNN
from lepton_cli.models.heads import Classifier
from tests.data.test_datamodule import ArrayDomain, make_data


def group_lrs(method) -> list[float]:
    configured = method.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    return [group["lr"] for group in optimizer.param_groups]  # [backbone, the rest]


def test_backbone_lr_is_a_tenth_for_trained_weights_full_from_scratch_and_explicit_numbers_win(tmp_path):
    assert group_lrs(SourceOnly(SmallCNN(), 10, lr=0.01)) == pytest.approx([0.01, 0.01])
    pretrained = FeatureExtractor(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3)), pretrained=True)
    assert group_lrs(SourceOnly(pretrained, 10, lr=0.01)) == pytest.approx([0.001, 0.01])
    checkpoint = tmp_path / "backbone.pt"
    torch.save({"state_dict": SmallCNN().state_dict()}, checkpoint)
    assert group_lrs(SourceOnly(SmallCNN(checkpoint=str(checkpoint)), 10, lr=0.01)) == pytest.approx([0.001, 0.01])
    assert group_lrs(SourceOnly(pretrained, 10, lr=0.01, backbone_lr_mult=1.0)) == pytest.approx([0.01, 0.01])
    # Fine-tuning: a source-trained start is a trained start; scratch is not.
    source_trained = Classifier(SmallCNN(), 10)
    assert group_lrs(FineTune(SmallCNN(), 10, init="source", teacher=source_trained, lr=0.01)) == pytest.approx([0.001, 0.01])
    assert group_lrs(FineTune(SmallCNN(), 10, init="scratch", lr=0.01)) == pytest.approx([0.01, 0.01])


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kwargs)


class SeenImages(pl.Callback):
    """The images of each evaluation batch, by the split name the method gave its outputs."""

    def __init__(self):
        self.images: dict[str, list[torch.Tensor]] = {}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.images.setdefault(outputs["split"], []).append(batch[0])

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.images.setdefault(pl_module.eval_split(dataloader_idx), []).append(batch[0])


def test_validation_reads_held_out_target_train_not_target_test_and_test_reports_sizes():
    data = make_data(ArrayDomain("a", "0123", count=40), ArrayDomain("b", "0123", count=30), source_val_fraction=0.1)
    method = SourceOnly(SmallCNN(image_size=16), 4)
    seen = SeenImages()
    trainer = quiet_trainer(callbacks=[seen])
    trainer.validate(method, datamodule=data, verbose=False)
    assert list(seen.images) == ["target_val", "source", "source_val"]
    assert torch.equal(torch.cat(seen.images["target_val"]), data.splits["target_val"][0])
    assert "target/acc" not in trainer.callback_metrics and "source_val/acc" in trainer.callback_metrics
    trainer.test(method, datamodule=data, verbose=False)
    assert method.test_results["target/test_size"] == 30 and method.test_results["source/test_size"] == 40
    assert "target/acc" in method.test_results


@pytest.mark.filterwarnings("ignore:.*does not have many workers")
def test_finetune_is_never_evaluated_on_its_labelled_images():
    # An Office-like target: no separate test split, so its test split is its training images.
    data = make_data(ArrayDomain("a", "0123", count=40), ArrayDomain("office_like", "0123", count=40),
                     target_labels_per_class=3)
    labelled = {image.numpy().tobytes() for image in data.splits["target_train"][0]}
    method = FineTune(SmallCNN(image_size=16), 4, init="scratch", labels_per_class=3)
    seen = SeenImages()
    trainer = quiet_trainer(callbacks=[seen], max_steps=1, num_sanity_val_steps=0)
    trainer.fit(method, datamodule=data)
    trainer.validate(method, datamodule=data, verbose=False)
    trainer.test(method, datamodule=data, verbose=False)
    evaluated = [image.numpy().tobytes() for split in ("target", "target_val") for batch in seen.images[split]
                 for image in batch]
    assert evaluated and not labelled & set(evaluated)
    assert method.test_results["target/test_size"] == 40 - 12
