"""The exact fixed-point weighted sum: bit-identical for any grouping, close to float64, loud out of range."""

from __future__ import annotations

import itertools
import logging
import math
import pickle

import pytest
import torch

from runner.algorithms.base import Difference
from runner.engine.aggregation import CPU_BLOCK, MAX_WEIGHT, WeightedSum

SIZES = [500, 3, 1, 120, 64, 17, 9, 250]


def client_updates(big: float = 1.0) -> list[tuple[dict, float]]:
    """Eight clients; the weights span blocks, and client 3 is ``big`` times larger (forcing split blocks)."""
    torch.manual_seed(0)
    out = []
    for k, n in enumerate(SIZES):
        start = {"w": torch.randn(CPU_BLOCK + 7) * 0.1, "b": torch.randn(5)}
        trained = {name: t + torch.randn(t.shape) * 10.0 ** -(k % 6) for name, t in start.items()}
        if k == 3:
            trained = {name: t + big * torch.randn(t.shape) for name, t in start.items()}
        update = {"delta": Difference(trained, start, ("w", "b")),
                  "control": {"v": torch.randn(3, 4) * 10.0 ** -(k % 4)}}
        out.append((update, float(n)))
    return out


def summed(updates: list[tuple[dict, float]], groups: list[list[int]],
           blocks: list[int] | None = None) -> WeightedSum:
    """What workers and the driver do: each group pre-reduced (in blocks of ``blocks[i]`` values, or the
    device's), shipped through pickle, merged."""
    total = WeightedSum()
    for index, group in enumerate(groups):
        partial = WeightedSum(block=blocks[index] if blocks else 0)
        for k in group:
            partial.add(updates[k][1], updates[k][0], loss=0.1 * k)
        total.merge(pickle.loads(pickle.dumps(partial)))
    return total


def exact_mean(updates: list[tuple[dict, float]], kind: str, name: str) -> torch.Tensor:
    return sum(n * u[kind][name].double() for u, n in updates) / sum(n for _, n in updates)


GROUPINGS = [[[0, 1, 2, 3, 4, 5, 6, 7]], [[7, 6, 5, 4, 3, 2, 1, 0]], [[0, 2, 4, 6], [1, 3, 5, 7]],
             [[5, 1], [3], [7, 0, 2], [6, 4]], [[3, 4, 5, 6, 7], [2, 1, 0]], [[k] for k in range(8)]]


@pytest.mark.parametrize("big", [1.0, 5e3])  # 5e3: client 3 alone pushes its blocks over 2^53, so they split
def test_the_sum_is_bit_identical_for_any_grouping_and_order(big):
    updates = client_updates(big)
    means = [summed(updates, groups).mean() for groups in GROUPINGS]
    for kind, name in [("delta", "w"), ("delta", "b"), ("control", "v")]:
        for other in means[1:]:
            assert torch.equal(means[0][kind][name], other[kind][name])
    naive = [sum((updates[k][1] * updates[k][0]["delta"]["w"] for k in order), torch.zeros(1))
             for order in ([0, 1, 2, 3, 4, 5, 6, 7], [7, 3, 5, 1, 6, 2, 4, 0])]
    assert not torch.equal(naive[0], naive[1])  # the case is hard: plain float32 sums depend on order


@pytest.mark.parametrize("big", [1.0, 5e3])
def test_the_mean_is_within_the_stated_bound_of_float64(big):
    """Each value is rounded to a multiple of 2^-40 (error ≤ 2^-41), the mean once more to float32."""
    updates = client_updates(big)
    total = summed(updates, [[0, 1, 2], [3, 4, 5, 6, 7]])
    assert total.high is not None if big > 1 else total.high is None  # the split path was (not) taken
    for kind, name in [("delta", "w"), ("delta", "b"), ("control", "v")]:
        exact = exact_mean(updates, kind, name)
        error = (total.mean()[kind][name].double() - exact).abs()
        assert bool((error <= 2.0 ** -41 + 2.0 ** -24 * exact.abs() * (1 + 1e-9)).all())
    assert total.mean_loss == pytest.approx(sum(n * 0.1 * k for k, n in enumerate(SIZES)) / sum(SIZES))


def test_values_that_need_no_rounding_are_summed_exactly():
    """Multiples of 2^-40 sum to exactly the right integer: the float32 mean is the correctly rounded one."""
    torch.manual_seed(1)
    updates = [({"delta": {"w": torch.randint(-2**23, 2**23, (1000,)).float() * 2.0 ** -k}}, float(n))
               for k, n in zip(range(17, 34, 4), [7, 1, 300, 12, 5])]  # 23-bit integers times 2^-17 … 2^-33
    mean = summed(updates, [[0, 1, 2, 3, 4]]).mean()["delta"]["w"]
    weight = sum(n for _, n in updates)
    for i in range(0, 1000, 37):
        exact = sum(int(u["delta"]["w"][i] * 2.0 ** 40) * int(n) for u, n in updates)
        assert mean[i].item() == float(torch.tensor(exact / 2**40 / weight, dtype=torch.float64).float())


def test_values_outside_the_range_make_nan_never_wrapped_numbers(caplog):
    torch.manual_seed(2)
    base = [({"delta": {"w": torch.randn(40), "b": torch.randn(3)}}, float(n)) for n in (4, 9, 2)]
    bad = {"delta": {"w": torch.randn(40), "b": torch.randn(3)}}
    bad["delta"]["w"][[3, 7, 11, 12]] = torch.tensor([2.0 ** 20, -math.inf, math.nan, -3e38])
    bad["delta"]["w"][20] = 2.0 ** 20 * (1 - 2 ** -23)  # the largest float32 below 2^20: still in range
    updates = [*base, (bad, 6.0)]
    with caplog.at_level(logging.WARNING, logger="runner.engine.aggregation"):
        means = [summed(updates, groups).mean()["delta"] for groups in ([[0, 1, 2, 3]], [[3, 1], [2, 0]])]
    assert "delta w" in caplog.text and "delta b" not in caplog.text
    for mean in means:
        assert torch.isnan(mean["w"][[3, 7, 11, 12]]).all()
        finite = torch.ones(40, dtype=torch.bool)
        finite[[3, 7, 11, 12]] = False
        assert torch.isfinite(mean["w"][finite]).all() and torch.isfinite(mean["b"]).all()
        exact = exact_mean(updates, "delta", "w")
        assert torch.allclose(mean["w"][finite].double(), exact[finite], rtol=1e-6, atol=2.0 ** -40)
        assert mean["w"][20].item() == pytest.approx(exact[20].item(), rel=1e-7)
    assert torch.equal(torch.nan_to_num(means[0]["w"]), torch.nan_to_num(means[1]["w"]))


def test_a_total_weight_beyond_the_exact_range_is_an_error():
    update = {"delta": {"w": torch.ones(3)}}
    total = WeightedSum()
    total.add(MAX_WEIGHT - 1, update, 0.0)
    with pytest.raises(ValueError, match="2\\^23"):
        total.add(1.0, update, 0.0)
    other = WeightedSum()
    other.add(2.0, update, 0.0)
    with pytest.raises(ValueError, match="2\\^23"):
        total.merge(other)
    with pytest.raises(ValueError, match="sample count"):
        WeightedSum().add(2.5, update, 0.0)


def test_a_lazy_difference_sums_like_the_tensors_it_stands_for():
    torch.manual_seed(3)
    pairs = [({"w": torch.randn(70), "n": torch.tensor(5)}, {"w": torch.randn(70), "n": torch.tensor(3)})
             for _ in range(3)]
    lazy, eager = WeightedSum(), WeightedSum()
    for (a, b), n in zip(pairs, itertools.count(2)):
        lazy.add(float(n), {"delta": Difference(a, b, ("w", "n"))}, 0.0)
        eager.add(float(n), {"delta": {name: a[name] - b[name] for name in ("w", "n")}}, 0.0)
    for name in ("w", "n"):
        assert torch.equal(lazy.mean()["delta"][name], eager.mean()["delta"][name])
    assert lazy.mean()["delta"]["n"].item() == 2.0  # integer buffers (e.g. num_batches_tracked) too


def test_merging_reads_the_partial_sums_and_never_writes_them():
    """The driver's first partial sum becomes its total by a copy: the object store's memory is left alone."""
    updates = client_updates(5e3)
    partials = [pickle.loads(pickle.dumps(summed(updates, [group]))) for group in ([3, 0], [1, 2], [4, 5, 6, 7])]
    before = [(p.low.clone(), None if p.high is None else p.high.clone()) for p in partials]
    total = WeightedSum()
    for partial in partials:
        total.merge(partial)
    for partial, (low, high) in zip(partials, before):
        assert torch.equal(partial.low, low) and (high is None or torch.equal(partial.high, high))
    assert torch.equal(total.mean()["delta"]["w"], summed(updates, [list(range(8))]).mean()["delta"]["w"])


@pytest.mark.parametrize("big", [1.0, 5e3])
def test_partial_sums_with_a_gpus_one_block_merge_with_a_cpus_many(big):
    """A GPU worker keeps its whole buffer as one block, a CPU worker (or one that fell back to the CPU) blocks of
    CPU_BLOCK values: the driver merges both kinds, in any order, to the same words as one sum of every client."""
    updates = client_updates(big)
    numel = CPU_BLOCK + 7 + 5 + 12  # w, b and the control variate v, in one buffer
    reference = summed(updates, [list(range(8))]).mean()
    for blocks in ([numel, CPU_BLOCK, numel], [CPU_BLOCK, numel, CPU_BLOCK], [numel, numel, numel],
                   [1000, CPU_BLOCK, 333]):
        mean = summed(updates, [[3, 0], [1, 2, 7], [4, 5, 6]], blocks).mean()
        for kind, name in [("delta", "w"), ("delta", "b"), ("control", "v")]:
            assert torch.equal(mean[kind][name], reference[kind][name]), (blocks, kind, name)
