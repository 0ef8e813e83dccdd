"""Pretrained weights without network: one line in under 2 s naming `*.checkpoint=`; `hf-hub:` names;
close-name hints by prefix as well as by edit distance."""

from __future__ import annotations

import time

import pytest

from lepton_cli.errors import LeptonError
from lepton_cli.models import backbones
from lepton_cli.models.backbones import timm_backbone


@pytest.fixture(autouse=True)
def _timm_imported():
    import timm  # noqa: F401  (importing timm takes seconds on a loaded machine: not what is timed)


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "no answer"])
def test_missing_weights_without_network_fail_fast_naming_checkpoint(monkeypatch, tmp_path, offline):
    import huggingface_hub.constants as hub

    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    if offline == "HF_HUB_OFFLINE":
        monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    else:  # a network that never answers (a name lookup that hangs): the probe gives up after 1 s
        monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
        for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)

        def hang(*args, **kwargs):
            time.sleep(10)
            raise OSError("no network")

        monkeypatch.setattr(backbones.socket, "create_connection", hang)
    for name in ("resnet18", "hf-hub:timm/resnet18.a1_in1k"):
        started = time.perf_counter()
        with pytest.raises(LeptonError, match=r"student\.checkpoint=PATH.*teacher\.checkpoint=PATH") as error:
            timm_backbone(name, pretrained=True)
        assert time.perf_counter() - started < 2.0, name
        assert "\n" not in str(error.value) and name in str(error.value)
    assert hub.HF_HUB_OFFLINE is (offline == "HF_HUB_OFFLINE")  # the offline switch is put back


def test_hf_hub_names_are_accepted_as_names(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    # Not refused as an unknown timm name: the error is about the weights it would fetch.
    with pytest.raises(LeptonError, match="could not fetch pretrained weights for hf-hub:timm/not-cached-anywhere"):
        timm_backbone("hf-hub:timm/not-cached-anywhere")


def test_close_names_by_prefix_and_by_edit_distance():
    with pytest.raises(LeptonError, match="no model named 'resnet5'") as error:
        timm_backbone("resnet5")
    assert "close names: resnet50," in str(error.value)  # the prefix match, shortest first
    with pytest.raises(LeptonError) as error:
        timm_backbone("resnte50")
    assert "resnet50" in str(error.value)  # by edit distance
