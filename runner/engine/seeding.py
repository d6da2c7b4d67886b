"""Randomness derived from (seed, round, client), so results do not depend on which worker ran what."""

from __future__ import annotations

import numpy as np
import torch


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


def sample_clients(seed: int, round_index: int, num_clients: int, per_round: int) -> list[int]:
    """The round's participants, sorted; the same for a given seed and round whatever else happened."""
    rng = np.random.default_rng(derived_seed(seed, round_index, 1_000_003))
    return sorted(int(k) for k in rng.choice(num_clients, size=per_round, replace=False))
