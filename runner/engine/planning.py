"""Which worker trains which of a round's sampled clients.

A round lasts as long as its busiest worker. If each client always trained where it started, sampling
16 of 100 clients would give the busier of two workers 9.4 clients on average (10 or more in 41 % of
rounds) against a fair 8, and non-IID splits make clients' sizes differ by orders of magnitude. So each
round the driver plans the work: clients
in decreasing order of cost, each kept on the worker that holds its state while that worker stays
within its fair share, else given to the least-loaded worker (longest-processing-time-first). A
client that moves takes its persistent state along; every worker holds every client's data.
Results do not depend on the plan: a client's training is seeded by (seed, round, client) and the
aggregation is exact whatever the grouping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def home_worker(client: int, num_workers: int) -> int:
    """The worker that holds a client's state until a plan moves it, and again after a checkpoint loads."""
    return client % num_workers


def client_cost(num_samples: int, batch_size: int, epochs: int) -> int:
    """Work to train one client, in batches; one more for sending its update (which costs a batch or so)."""
    return epochs * math.ceil(num_samples / batch_size) + 1


def plan_round(sampled: Sequence[int], costs: Sequence[int], holders: Mapping[int, int],
               num_workers: int) -> list[list[int]]:
    """The clients each worker trains this round (sorted), balancing cost and moving few clients.

    ``holders`` maps a client to the worker holding its state, for clients that moved before; every
    other client is held by its :func:`home_worker`.
    """
    share = sum(costs[k] for k in sampled) / num_workers
    loads = [0] * num_workers
    plan: list[list[int]] = [[] for _ in range(num_workers)]
    for k in sorted(sampled, key=lambda k: (-costs[k], k)):
        worker = holders.get(k, home_worker(k, num_workers))
        if loads[worker] + costs[k] > share:
            worker = min(range(num_workers), key=lambda i: (loads[i], i))
        loads[worker] += costs[k]
        plan[worker].append(k)
    return [sorted(clients) for clients in plan]
