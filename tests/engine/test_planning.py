"""Round planning: every sampled client trained once, workers' loads balanced, few clients moved."""

from __future__ import annotations

import collections
import itertools

import pytest

from runner.engine.planning import client_cost, plan_round
from runner.engine.seeding import sample_clients


def loads(plan, costs):
    return [sum(costs[k] for k in clients) for clients in plan]


def test_client_cost_counts_batches_and_the_upload():
    assert client_cost(50, 32, 1) == 3
    assert client_cost(64, 32, 2) == 5
    assert client_cost(1, 32, 5) == 6


def test_equal_clients_split_evenly_and_keep_as_many_at_home_as_possible():
    costs = [3] * 100
    imbalanced_before = 0
    for round_index in range(1, 51):
        sampled = sample_clients(0, round_index, 100, 16)
        plan = plan_round(sampled, costs, {}, 2)
        assert sorted(itertools.chain(*plan)) == sampled
        assert [len(p) for p in plan] == [8, 8]
        at_home = sum(k % 2 == i for i, clients in enumerate(plan) for k in clients)
        evens = sum(k % 2 == 0 for k in sampled)
        assert at_home == 16 - abs(evens - 8)  # only the surplus moves
        imbalanced_before += evens != 8
    assert imbalanced_before > 25  # the static split k mod 2 would have been uneven in most rounds


def test_unequal_clients_stay_within_one_client_of_a_fair_share():
    costs = [1 + (k * 37) % 23 for k in range(60)]
    for round_index, workers in itertools.product(range(1, 21), (2, 3, 4)):
        sampled = sample_clients(1, round_index, 60, 12)
        plan = plan_round(sampled, costs, {}, workers)
        assert sorted(itertools.chain(*plan)) == sampled
        share = sum(costs[k] for k in sampled) / workers
        assert max(loads(plan, costs)) <= share + max(costs[k] for k in sampled)
        assert all(p == sorted(p) for p in plan)


def test_moved_clients_are_planned_where_their_state_now_is():
    costs = [2] * 10
    plan = plan_round([0, 2, 4, 6], costs, {0: 1, 2: 1}, 2)  # 0 and 2 live on worker 1 since an earlier move
    assert plan == [[4, 6], [0, 2]]


def test_one_worker_gets_everything():
    assert plan_round([3, 1, 2], [5, 1, 9, 2], {}, 1) == [[1, 2, 3]]


@pytest.mark.parametrize("workers", [2, 4])
def test_the_plan_is_a_pure_function(workers):
    costs = [1 + k % 5 for k in range(40)]
    sampled = sample_clients(3, 7, 40, 10)
    assert plan_round(sampled, costs, {5: 0}, workers) == plan_round(list(reversed(sampled)), costs, {5: 0}, workers)


def test_uniform_sampling_draws_what_it_always_drew():
    """Old studies resume and re-run to the same rows only if a round's participants never change."""
    assert sample_clients(0, 1, 100, 16) == [4, 6, 11, 15, 28, 29, 30, 36, 41, 56, 61, 67, 71, 72, 74, 84]
    assert sample_clients(5, 3, 40, 10) == [3, 7, 12, 13, 16, 17, 20, 24, 31, 34]


@pytest.mark.parametrize(("clients", "per_round"), [(10, 3), (24, 4), (1000, 100), (7, 7)])
def test_cyclic_sampling_trains_every_client_once_per_pass(clients, per_round):
    rounds = [sample_clients(2, r, clients, per_round, "cyclic") for r in range(1, 3 * clients + 1)]
    assert all(len(set(chosen)) == per_round == len(chosen) and chosen == sorted(chosen) for chosen in rounds)
    passes = -(-clients // per_round)
    assert set(itertools.chain(*rounds[:passes])) == set(range(clients))  # all visited in ceil(N / m) rounds
    counts = collections.Counter(itertools.chain(*rounds[:clients]))  # N rounds: every client exactly m times
    assert set(counts.values()) == {per_round} and len(counts) == clients
    assert rounds[0] != sample_clients(3, 1, clients, per_round, "cyclic") or per_round == clients  # seeded
