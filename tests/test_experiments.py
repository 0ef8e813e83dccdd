"""The `experiment=` presets (conf/experiment/): each one trains end to end on fake files in its data
sets' real formats, says where its protocol comes from, and applies its per-method settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lepton_cli.config import group_options
from lepton_cli.errors import LeptonError
from tests.conftest import compose_config
from tests.data import fake_files
from tests.data.text_audio_fakes import write_amazon_dann

PRESETS = sorted(group_options("experiment"))
FAST = ["trainer.fast_dev_run=true", "logger=none", "report=false", "data.batch_size=4", "data.eval_batch_size=16"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Every data set a preset names, as tiny fake files in its official on-disk format."""
    root = tmp_path_factory.mktemp("experiment_data")
    for write in (fake_files.write_mnist, fake_files.write_usps, fake_files.write_svhn, fake_files.write_mnist_m,
                  fake_files.write_cifar10, fake_files.write_stl10):
        write(root)
    for domain in ("amazon", "dslr", "webcam"):
        fake_files.write_office31(root, domain)
    for domain in ("Art", "Clipart", "Product", "Real_World"):
        fake_files.write_office_home(root, domain)
    write_amazon_dann(root, domains=("books", "dvd", "electronics", "kitchen"))
    return root


def _offline(name: str) -> list[str]:
    """ImageNet weights cannot be downloaded here; the Office presets ask for them."""
    return ["student.pretrained=false"] if name.startswith("office") else []


def test_every_protocol_of_the_issue_has_a_preset():
    office_home = [f"office_home/{s}_{t}" for s in ("Ar", "Cl", "Pr", "Rw") for t in ("Ar", "Cl", "Pr", "Rw") if s != t]
    expected = {"digits/mnist_usps", "digits/usps_mnist", "digits/svhn_mnist", "digits/mnist_mnistm", "cifar_stl",
                "stl_cifar", *(f"office31/{p}" for p in ("A_W", "D_W", "W_D", "A_D", "D_A", "W_A")), *office_home}
    amazon = [f"amazon/{s}_{t}" for s in ("books", "dvd", "electronics", "kitchen")
              for t in ("books", "dvd", "electronics", "kitchen") if s != t]  # issue 18: the DANN paper's Table 1
    expected |= set(amazon)
    assert set(PRESETS) == expected


@pytest.fixture(scope="module")
def default_pair(tmp_path_factory) -> tuple[str, str]:
    cfg = compose_config([], tmp_path_factory.mktemp("default") / "run")
    return cfg.source.name, cfg.target.name


@pytest.mark.parametrize("name", PRESETS)
def test_preset_fixes_its_protocol_and_names_its_source(default_pair, tmp_path, name):
    text = (Path(__file__).parents[1] / "conf" / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n") and "# Source:" in text
    assert group_options("experiment")[name]  # the line `lepton list experiment` shows
    cfg = compose_config([f"experiment={name}", *_offline(name)], tmp_path / "run")
    assert (cfg.source.name, cfg.target.name) != default_pair and cfg.source.name != cfg.target.name
    if name.startswith("amazon/"):  # text: the paper's network, not an image size; a CPU budget (the preset says why)
        assert cfg.student._target_.endswith("ShallowMLP") and cfg.method.bottleneck_dim is None
        assert cfg.per_method.dann.hidden_layers == 0
        return
    # What the protocol fixes is a value, not Lepton's auto or default: size, channels, batch, steps.
    assert isinstance(cfg.data.image_size, int) and cfg.data.channels in (1, 3)
    assert cfg.data.batch_size >= 32 and cfg.data.steps_per_epoch * cfg.trainer.max_epochs >= 10_000


# The digits and CIFAR/STL families train in the quick suite; the Office ones (ResNet-50: over a minute for the
# first on a loaded 2-core CPU, even at one batch of 4) and the mirrored pairs are slow.
QUICK = {"digits/mnist_usps", "digits/svhn_mnist", "digits/mnist_mnistm", "cifar_stl", "amazon/books_dvd"}


@pytest.mark.parametrize("name", [name if name in QUICK else pytest.param(name, marks=pytest.mark.slow)
                                  for name in PRESETS])
def test_preset_trains_one_batch_on_format_true_files(data_root, tmp_path, name):
    from lepton_cli.train import run

    cfg = compose_config([f"experiment={name}", f"data.root={data_root}", *_offline(name), *FAST], tmp_path / "run")
    if isinstance(cfg.data.image_size, int):
        cfg.data.image_size = min(cfg.data.image_size, 64)  # 224 px ResNet-50 would take a minute a preset
    metrics = run(cfg)
    assert (metrics["source"], metrics["target"]) == (cfg.source.name, cfg.target.name)
    assert metrics["steps"] == 1 and 0.0 <= metrics["target/acc"] <= 1.0


def test_per_method_settings_apply_to_their_method_only_and_the_command_line_wins(run_experiment, data_root, tmp_path):
    from lepton_cli.schema import validate
    from lepton_cli.schema.presets import apply_per_method

    _, run_dir = run_experiment("experiment=digits/mnist_usps", f"data.root={data_root}", *FAST, "method=cdan",
                                tiny=False)
    ran = OmegaConf.load(run_dir / "config.yaml").method
    assert ran.entropy_conditioning is False  # TLlib's digits protocol runs plain CDAN
    assert OmegaConf.load(Path(__file__).parents[1] / "conf" / "method" / "cdan.yaml").entropy_conditioning is True

    cfg = compose_config(["experiment=digits/mnist_usps", "method=cdan", "method.entropy_conditioning=true"],
                         tmp_path / "explicit")
    validate(cfg)
    apply_per_method(cfg)
    assert cfg.method.entropy_conditioning is True

    # Nested keys, and a method the block does not name keeps its own values.
    cfg = compose_config(["experiment=digits/svhn_mnist", "method=source_only"], tmp_path / "erm")
    apply_per_method(cfg)
    assert (cfg.method.lr, cfg.method.optimizer.weight_decay, cfg.method.scheduler.gamma) == (0.1, 5.0e-4, 3.0e-4)
    cfg = compose_config(["experiment=digits/svhn_mnist", "method=mcc"], tmp_path / "mcc")
    apply_per_method(cfg)
    assert (cfg.method.lr, cfg.method.optimizer.weight_decay) == (0.01, 1.0e-3)


@pytest.mark.parametrize("override,message", [
    ("+per_method.cdan.entropy_conditionning=false", "per_method.cdan.entropy_conditionning is not a key of method=cdan"),
    ("per_method.cdan=3", "per_method.cdan must be a mapping"),
    ("+per_method.cdan.trade_off=-1", "method.trade_off"),
])
def test_a_wrong_per_method_setting_is_one_clear_error_before_any_data_is_read(tmp_path, override, message):
    from lepton_cli.schema import validate

    cfg = compose_config(["experiment=digits/mnist_usps", "method=cdan", override], tmp_path / "run")
    with pytest.raises(LeptonError) as error:
        validate(cfg)
    assert message in str(error.value) and "\n" not in str(error.value)
