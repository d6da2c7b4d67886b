"""The rank rule (models.rank): pure integer arithmetic, checked against brute force and the authors' numbers."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from models.rank import (
    fedpara_params,
    lowrank_params,
    lowrank_rank_for_budget,
    original_params,
    pfedpara_params,
    r_max,
    r_min,
    rank_from_gamma,
    rank_from_ratio,
)

# (out, in, kernel_size): VGG16's and ResNet-18's convs, 1×1 shortcuts, LSTM gates, FC-2, heads.
SHAPES = [(64, 3, 3), (64, 64, 3), (128, 64, 3), (256, 256, 3), (512, 512, 3), (128, 64, 1), (512, 256, 1),
          (1024, 8, None), (1024, 256, None), (200, 784, None), (10, 200, None), (80, 256, None), (512, 512, None)]


def brute_force_r_max(out_dim, in_dim, k):
    fits = [r for r in range(1, 2000) if fedpara_params(out_dim, in_dim, k, r) <= original_params(out_dim, in_dim, k)]
    return max(fits, default=1)


def test_closed_form_counts():
    assert original_params(64, 3, 3) == 1728 and original_params(10, 200, None) == 2000
    assert fedpara_params(256, 256, 3, 36) == 2 * (36 * 36 * 9 + 36 * 512) == 60192
    assert fedpara_params(200, 784, None, 10) == 2 * 10 * 984  # linear: X·Yᵀ has no core
    assert fedpara_params(128, 64, 1, 5) == 2 * (25 + 5 * 192)  # a 1×1 conv still has an r×r core
    assert lowrank_params(256, 256, 3, 10) == 900 + 5120
    assert lowrank_params(200, 784, None, 10) == 9840
    assert pfedpara_params(512, 512, 3, 52) == fedpara_params(512, 512, 3, 52)


def test_r_min_is_the_full_rank_minimum():
    assert r_min(64, 3) == 2 and r_min(512, 512) == 23 and r_min(10, 200) == 4 and r_min(256, 256) == 16
    for m, n in [(30, 20), (64, 3), (1024, 256), (49, 100)]:
        r = r_min(m, n)
        assert r * r >= min(m, n) > (r - 1) ** 2


@pytest.mark.parametrize("shape", SHAPES)
def test_r_max_is_the_largest_rank_within_the_original_size(shape):
    out_dim, in_dim, k = shape
    high = r_max(out_dim, in_dim, k)
    assert high == brute_force_r_max(out_dim, in_dim, k)
    assert fedpara_params(out_dim, in_dim, k, high) <= original_params(out_dim, in_dim, k)
    assert fedpara_params(out_dim, in_dim, k, high + 1) > original_params(out_dim, in_dim, k)


def test_r_max_known_values():
    assert r_max(256, 256, 3) == 154  # 2(9·154² + 512·154) = 584584 ≤ 589824 < 2(9·155² + 512·155)
    assert r_max(512, 512, None) == 128  # ⌊512·512 / (2·1024)⌋
    assert r_max(2, 2, None) == 1  # even r = 1 exceeds a 2×2 layer: r_max is still at least 1


@pytest.mark.parametrize("shape", SHAPES)
def test_rank_from_gamma_follows_the_formula_exactly(shape):
    out_dim, in_dim, k = shape
    low, high = r_min(out_dim, in_dim), r_max(out_dim, in_dim, k)
    assert low <= high
    assert rank_from_gamma(0.0, out_dim, in_dim, k) == low
    assert rank_from_gamma(1.0, out_dim, in_dim, k) == high
    previous = low
    for step in range(11):
        gamma = step / 10
        exact = math.ceil((1 - Fraction(step, 10)) * low + Fraction(step, 10) * high)  # no float error
        rank = rank_from_gamma(gamma, out_dim, in_dim, k)
        assert rank == exact and rank >= previous
        previous = rank


def test_rank_from_gamma_does_not_round_float_noise_up():
    # 16→128 3×3 conv: r_min = 4, r_max = 24; in floats 0.6·4 + 0.4·24 = 12.000000000000002, exactly 12.
    assert (r_min(16, 128), r_max(16, 128, 3)) == (4, 24) and 0.6 * 4 + 0.4 * 24 > 12
    assert rank_from_gamma(0.4, 16, 128, 3) == 12
    tiny = (6, 6, None)  # r_min = 3 > r_max = ⌊36/24⌋ = 1: every γ gives r_max
    assert r_min(6, 6) == 3 and r_max(*tiny) == 1
    assert [rank_from_gamma(g, *tiny) for g in (0.0, 0.5, 1.0)] == [1, 1, 1]


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_rank_from_ratio_reproduces_the_authors_notebook(ratio):
    # The authors' FedPara.ipynb prints these counts for a 256→256 3×3 conv at ratios 0.1 … 0.9.
    printed = {0.1: 60192, 0.3: 178050, 0.5: 296434, 0.7: 414792, 0.9: 533192}
    assert fedpara_params(256, 256, 3, rank_from_ratio(ratio, 256, 256, 3)) == printed[ratio]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.2, 0.4, 0.8])
def test_rank_from_ratio_reaches_the_ratio_within_one_rank_step(shape, ratio):
    out_dim, in_dim, k = shape
    rank = rank_from_ratio(ratio, out_dim, in_dim, k)
    low, high = r_min(out_dim, in_dim), r_max(out_dim, in_dim, k)
    target = ratio * original_params(out_dim, in_dim, k)
    assert low <= rank <= high
    if low < rank < high:
        assert fedpara_params(out_dim, in_dim, k, rank - 1) < target <= fedpara_params(out_dim, in_dim, k, rank)
    elif rank == low:  # the full-rank minimum already reaches the target
        assert fedpara_params(out_dim, in_dim, k, rank) >= target or rank == high


@pytest.mark.parametrize("shape", SHAPES)
def test_lowrank_budget_rank_is_closest_from_below(shape):
    out_dim, in_dim, k = shape
    for gamma in (0.0, 0.1, 0.5, 1.0):
        budget = fedpara_params(out_dim, in_dim, k, rank_from_gamma(gamma, out_dim, in_dim, k))
        r_low = lowrank_rank_for_budget(budget, out_dim, in_dim, k)
        assert lowrank_params(out_dim, in_dim, k, r_low) <= budget < lowrank_params(out_dim, in_dim, k, r_low + 1)
    # A linear low-rank layer with FedPara's budget gets exactly twice the inner rank (rank 2r vs r²).
    assert lowrank_rank_for_budget(fedpara_params(200, 784, None, 10), 200, 784, None) == 20


def test_knobs_out_of_range_raise():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="gamma"):
            rank_from_gamma(bad, 64, 64, 3)
    for bad in (0.0, 1.2):
        with pytest.raises(ValueError, match="ratio"):
            rank_from_ratio(bad, 64, 64, 3)
