"""Backbones: any nn.Module (torchvision included) as a feature extractor, each backbone's own input
normalisation, and pretrained downloads that fail at once without network."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.models import backbones
from lepton_cli.models.backbones import FeatureExtractor, SmallCNN, backbone_normalization, timm_backbone
from lepton_cli.models.heads import Classifier


def test_a_torchvision_resnet_is_a_backbone_with_its_feature_width_and_imagenet_normalisation():
    torchvision = pytest.importorskip("torchvision")
    classifier = Classifier(torchvision.models.resnet18(weights=None), num_classes=5, bottleneck_dim=None)
    assert classifier.backbone.num_features == 512  # torchvision has no num_features: measured, fc dropped
    logits, features = classifier(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 5) and features.shape == (2, 512)
    mean, std = backbone_normalization(classifier.backbone)
    assert mean == pytest.approx([0.485, 0.456, 0.406]) and std == pytest.approx([0.229, 0.224, 0.225])


def test_any_module_is_wrapped_pooled_and_measured_without_touching_batch_norm():
    trunk = nn.Sequential(nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU())  # a 4-D output
    backbone = FeatureExtractor(trunk)
    assert backbone.num_features == 6 and backbone(torch.rand(3, 1, 10, 10)).shape == (3, 6)
    assert int(trunk[1].num_batches_tracked) == 1  # only the call above: the probe ran in eval mode
    assert backbone.training
    with pytest.raises(LeptonError, match="num_features="):
        FeatureExtractor(nn.Linear(7, 3))  # the probe image does not fit a Linear: say what to pass


def test_backbone_normalisation_comes_from_timm_for_timm_models_and_none_for_the_digit_cnn():
    assert backbone_normalization(SmallCNN()) is None  # the augment config's 0.5 / 0.5 then applies
    rgb = timm_backbone("resnet18", in_chans=3)
    assert backbone_normalization(rgb)[0] == pytest.approx([0.485, 0.456, 0.406])
    grey = timm_backbone("resnet18", in_chans=1)
    mean, std = backbone_normalization(grey)
    assert mean == pytest.approx([sum([0.485, 0.456, 0.406]) / 3]) and std == pytest.approx([sum([0.229, 0.224, 0.225]) / 3])
    assert not rgb.is_pretrained and not SmallCNN().is_pretrained


def test_pretrained_weights_without_network_fail_in_about_a_second(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    offline_before = hub.HF_HUB_OFFLINE
    monkeypatch.setattr(backbones, "_hub_reachable", lambda timeout=0: False)  # as on a machine without network
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    started = time.monotonic()
    with pytest.raises(LeptonError, match="pretrained=false"):
        timm_backbone("resnet18", pretrained=True)
    assert time.monotonic() - started < 10  # it took ~48 s of retries before
    assert hub.HF_HUB_OFFLINE == offline_before  # offline mode only for the call
