"""Training terms reach Lightning's loggers only at the steps they write (`log_every_n_steps`: logging
the others cost a millisecond of Python per value and showed nothing), while the per-epoch means of
the selection history and the NaN guard still see every step."""

from __future__ import annotations

import pytest

from tests.methods.test_teacher_methods import train_log


def test_terms_logged_every_n_steps_and_averaged_over_every_step(run_experiment, tmp_path):
    runs = {}
    for every in (1, 3):
        metrics, run_dir = run_experiment("method=dann", "data.steps_per_epoch=6", "logger=csv",
                                          f"trainer.log_every_n_steps={every}", run_dir=tmp_path / f"every_{every}")
        runs[every] = metrics, train_log(run_dir, "train/transfer")
    (every_step, logged_every_step), (every_third, logged_every_third) = runs[1], runs[3]
    assert len(logged_every_step) == 6
    # the same training (same seed, deterministic): steps 3 and 6 are logged, the values of those steps
    assert logged_every_third == pytest.approx([logged_every_step[2], logged_every_step[5]], rel=1e-5)
    for key in ("train/loss", "train/classification", "train/transfer", "train/domain_acc"):
        mean = every_third["selection/history"][0][key]
        assert mean == pytest.approx(every_step["selection/history"][0][key], rel=1e-5)
    assert every_step["selection/history"][0]["train/transfer"] == pytest.approx(sum(logged_every_step) / 6, rel=1e-5)
