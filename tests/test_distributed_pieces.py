"""The DDP pieces that can be checked in one CPU process: per-rank seeds, statistics averaged over
ranks (a real gloo group of one), and evaluation of a split smaller than the number of ranks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lepton_cli.distributed import eval_sampler, mean_over_ranks, rank_seed, seed_this_rank


def test_rank_seeds_differ_by_rank_and_epoch_and_are_reproducible():
    seeds = {(rank, epoch): rank_seed(0, rank, epoch) for rank in range(4) for epoch in range(3)}
    assert len(set(seeds.values())) == 12
    assert rank_seed(0, 1, 2) == seeds[(1, 2)] and rank_seed(1, 1, 2) != seeds[(1, 2)]


def draws_after_seeding(rank: int, world_size: int, monkeypatch) -> torch.Tensor:
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    torch.manual_seed(7)  # what seed_everything gives every rank
    seed_this_rank(SimpleNamespace(world_size=world_size, global_rank=rank), epoch=0)
    return torch.rand(5)  # as an augmentation or a dropout mask would draw


def test_each_rank_draws_its_own_augmentations_and_dropout_deterministically(monkeypatch):
    rank0, rank1 = draws_after_seeding(0, 2, monkeypatch), draws_after_seeding(1, 2, monkeypatch)
    assert not torch.equal(rank0, rank1)
    assert torch.equal(rank1, draws_after_seeding(1, 2, monkeypatch))  # seed + rank: reproducible
    torch.manual_seed(7)
    single = torch.rand(5)
    assert torch.equal(draws_after_seeding(0, 1, monkeypatch), single)  # one process: untouched


@pytest.fixture
def gloo_group_of_one(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_mean_over_ranks_is_the_tensor_itself_without_ddp_and_in_a_group_of_one(gloo_group_of_one):
    statistics = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    assert torch.equal(mean_over_ranks(statistics), statistics)


def test_mean_over_ranks_averages_what_the_ranks_contribute(monkeypatch):
    import torch.distributed as dist

    other_rank = torch.tensor([0.0, 1.0])
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_reduce", lambda tensor, op=None: tensor.add_(other_rank))
    assert torch.equal(mean_over_ranks(torch.tensor([1.0, 0.0])), torch.tensor([0.5, 0.5]))


def test_a_split_smaller_than_the_ranks_is_evaluated_whole_on_every_rank():
    tiny = list(range(3))
    shards = [list(eval_sampler(tiny, SimpleNamespace(world_size=4, global_rank=rank))) for rank in range(4)]
    assert shards == [tiny] * 4  # no rank without a batch (it would wait forever at the metric sync)
    from torch.utils.data import DistributedSampler

    assert isinstance(eval_sampler(tiny, SimpleNamespace(world_size=4, global_rank=0)), DistributedSampler)
    big = list(range(9))
    shards = [list(eval_sampler(big, SimpleNamespace(world_size=4, global_rank=rank))) for rank in range(4)]
    assert sorted(index for shard in shards for index in shard) == big  # still sharded without repeats when every rank gets one


def test_duplicating_every_image_leaves_the_metrics_unchanged():
    from lepton_cli.methods.base import classification_metrics

    logits, labels = torch.randn(3, 4), torch.tensor([0, 1, 1])
    once, four_times = classification_metrics(4), classification_metrics(4)
    once.update(logits, labels)
    four_times.update(logits.repeat(4, 1), labels.repeat(4))
    for name, value in once.compute().items():
        torch.testing.assert_close(four_times.compute()[name], value, msg=name)
