"""Lepton from Python, as a user would write it (README, "Methods"): a method on a torchvision
backbone, your own tensors and dataloaders, Lightning's own Trainer. Runnable as a script too."""

from __future__ import annotations

import pytest
import torch


def example() -> dict[str, float]:
    import pytorch_lightning as pl
    import torchvision
    from torch.utils.data import DataLoader, TensorDataset

    from lepton_cli.methods import DANN

    torch.manual_seed(0)
    # Images as torchvision gives them: float in [0, 1] (uint8 in [0, 255] works too). Not
    # normalised: the method normalises with the backbone's statistics (ImageNet's here).
    source = TensorDataset(torch.rand(16, 3, 32, 32), torch.randint(0, 4, (16,)))
    target = TensorDataset(torch.rand(16, 3, 32, 32), torch.full((16,), -1))  # no target labels
    target_test = TensorDataset(torch.rand(8, 3, 32, 32), torch.randint(0, 4, (8,)))
    source_test = TensorDataset(torch.rand(8, 3, 32, 32), torch.randint(0, 4, (8,)))

    # Any nn.Module is a backbone: a torchvision ResNet loses its fc layer, its width is measured.
    method = DANN(backbone=torchvision.models.resnet18(weights=None), num_classes=4, lr=0.01)
    trainer = pl.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    # Training batches: {"source": (images, labels), "target": (images, labels)}.
    trainer.fit(method, train_dataloaders={"source": DataLoader(source, batch_size=4, shuffle=True),
                                           "target": DataLoader(target, batch_size=4, shuffle=True)})
    # Unnamed evaluation loaders are "target", "source" in this order (methods.base.EVAL_DOMAINS).
    trainer.test(method, dataloaders=[DataLoader(target_test, batch_size=8), DataLoader(source_test, batch_size=8)],
                 verbose=False)
    return method.test_results


def test_a_method_on_a_torchvision_backbone_trains_and_tests_from_python():
    pytest.importorskip("torchvision")
    results = example()
    assert 0.0 <= results["target/acc"] <= 1.0 and 0.0 <= results["source/acc"] <= 1.0


def test_float_images_are_one_scale_in_training_and_evaluation():
    from lepton_cli.errors import LeptonError
    from lepton_cli.methods import SourceOnly
    from lepton_cli.models.backbones import SmallCNN

    method = SourceOnly(SmallCNN(in_chans=1), num_classes=3).eval()
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    torch.testing.assert_close(method(images.float() / 255), method(images))
    torch.testing.assert_close(method.view(images.float() / 255), method.as_input(images))
    with pytest.raises(LeptonError, match=r"\[0, 1\]"):
        method(images.float())  # [0, 255] floats: said, not silently divided (or not) by 255


if __name__ == "__main__":
    print(example())
