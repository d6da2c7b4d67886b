"""Randomness derived from (seed, round, client), so results do not depend on which worker ran what."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from runner.config import TrialConfig


def derived_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence does the mixing)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def client_generator(seed: int, round_index: int, client: int, device: torch.device,
                     reuse: torch.Generator | None = None) -> torch.Generator:
    """The generator a client uses for shuffling, augmentation and quantization in one round; ``reuse``
    is reseeded instead of building a new one (the same draws, no generator built per client)."""
    generator = torch.Generator(device=device) if reuse is None else reuse
    generator.manual_seed(derived_seed(seed, round_index, client))
    return generator


SAMPLING = ("uniform", "cyclic")


def sample_clients(seed: int, round_index: int, num_clients: int, per_round: int,
                   scheme: str = "uniform") -> list[int]:
    """The round's participants (rounds count from 1), sorted; the same for a given seed and round whatever
    else happened. ``uniform``: a fresh draw without replacement every round, as in FedAvg. ``cyclic``:
    consecutive slices of one seeded permutation of the population, wrapping round, so every client takes part
    once every ``num_clients / per_round`` rounds and all are visited within ``ceil(num_clients / per_round)``
    rounds (a large population with few rounds each: a uniform draw leaves many clients never trained)."""
    if scheme == "cyclic":
        order, start = _permutation(seed, num_clients), (round_index - 1) * per_round
        return sorted(int(order[(start + j) % num_clients]) for j in range(per_round))
    rng = np.random.default_rng(derived_seed(seed, round_index, 1_000_003))
    return sorted(int(k) for k in rng.choice(num_clients, size=per_round, replace=False))


def round_clients(cfg: TrialConfig, round_index: int) -> list[int]:
    """A trial's participants in round ``round_index``, by its ``data`` section's population and scheme."""
    d = cfg.data
    return sample_clients(cfg.seed, round_index, d.num_clients, d.clients_per_round, d.client_sampling)


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, num_clients: int) -> np.ndarray:
    order = np.random.default_rng(derived_seed(seed, 1_000_033)).permutation(num_clients)
    order.flags.writeable = False
    return order
