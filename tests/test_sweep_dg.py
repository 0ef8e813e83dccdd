"""The leave-one-domain-out preset (conf/sweep/dg_digits.yaml) expands to the right runs, each
training on the three other digit domains, and the leaderboard gets one column per held-out domain."""

from __future__ import annotations

import itertools
import statistics

from hydra.utils import instantiate

from lepton_cli.data.multi_source import MultiSourceDomain
from lepton_cli.reporting.leaderboard import build_leaderboard, write_leaderboard
from lepton_cli.sweep import cli as sweep_cli
from lepton_cli.sweep import plan
from tests.conftest import compose_config

DOMAINS = ["mnist", "usps", "synth_digits", "digits"]
METHODS = ["erm", "mldg", "coral", "mixstyle"]


def test_dg_preset_is_leave_one_domain_out_over_four_digit_domains(tmp_path):
    options = sweep_cli.parse_args(["sweep=dg_digits", "--dir", str(tmp_path)])
    jobs = plan.expand_grid(options.grid)
    settings = [dict(o.partition("=")[::2] for o in job) for job in jobs]
    assert sorted((s["dataset@target"], s["method"], s["seed"]) for s in settings) == sorted(
        itertools.product(DOMAINS, METHODS, ["0", "1", "2"]))
    assert all(s["dataset@source"] == "multi" and s["selection"] == "source_val" for s in settings)
    assert plan.varying_keys(jobs) == ["dataset@target", "method", "seed"]
    for target in DOMAINS:  # the composed run trains on the other three domains only
        job = next(job for job, s in zip(jobs, settings) if s["dataset@target"] == target)
        cfg = compose_config(job, tmp_path / target)
        source = instantiate(cfg.source)
        assert isinstance(source, MultiSourceDomain) and cfg.target.name == target
        assert source.leave_out(target).domain_names == [d for d in DOMAINS if d != target]


def fake_record(target: str, method: str, seed: int, acc: float) -> dict:
    overrides = [f"dataset@target={target}", f"method={method}", f"seed={seed}"]
    metrics = {"target/acc": acc, "selection/target/acc": acc - 0.01, "oracle/target/acc": acc + 0.01,
               "selection/rank_score": 0.5, "selection/score": 0.5, "selection/name": "source_val",
               "selection/mode": "max", "source/acc": 0.9, "wall_time_s": 1.0}
    return {"overrides": overrides, "group": tuple(overrides[:2]), "status": "ok", "metrics": metrics, "run_dir": ""}


def test_dg_leaderboard_has_a_column_per_held_out_domain_and_the_per_seed_average(tmp_path):
    accuracy = {("mnist", "erm"): [0.50, 0.60], ("usps", "erm"): [0.70, 0.90],
                ("mnist", "mldg"): [0.40, 0.45], ("usps", "mldg"): [0.80, 0.85]}
    records = [fake_record(target, method, seed, acc) for (target, method), values in accuracy.items()
               for seed, acc in enumerate(values)]
    rows = build_leaderboard(records, ["dataset@target", "method"])
    write_leaderboard(rows, tmp_path, chart=False)
    text = (tmp_path / "leaderboard_domains.md").read_text()
    assert "| method | target=mnist | target=usps | average | seeds (all domains) |" in text
    assert "oracle pick, uses target labels" in text and "validator's pick: selection=source_val" in text
    last = text.split("## ")[1]  # the first table: last weights
    erm = next(line for line in last.splitlines() if line.startswith("| erm "))
    # per seed, the mean over domains: (0.5 + 0.7) / 2 = 0.6 and (0.6 + 0.9) / 2 = 0.75
    average = f"{100 * statistics.fmean([0.6, 0.75]):.2f} ± {100 * statistics.stdev([0.6, 0.75]):.2f}"
    assert erm == f"| erm | 55.00 ± 7.07 | 80.00 ± 14.14 | {average} | 2 |"
    # one target only: no per-domain table
    single = build_leaderboard([r for r in records if "dataset@target=mnist" in r["overrides"]], ["method"])
    write_leaderboard(single, tmp_path / "single", chart=False)
    assert not (tmp_path / "single" / "leaderboard_domains.md").exists()
