"""What one transfer costs on the wire (PAPER.md §5).

Costs are computed from tensor sizes alone, so they are exact and testable by hand:
a float tensor costs 4 bytes an element; a FedPAQ upload is quantised per tensor to ``levels`` levels
(QSGD): one 32-bit norm, then a sign bit and ⌈log2(levels + 1)⌉ bits for the level of each element.
"""

from __future__ import annotations

import math
from typing import Iterable

FLOAT_BYTES = 4


def float_bytes(numels: Iterable[int]) -> int:
    """Bytes for sending tensors of these sizes as 32-bit floats."""
    return FLOAT_BYTES * sum(numels)


def quantised_bytes(numels: Iterable[int], levels: int) -> int:
    """Bytes for sending tensors quantised to ``levels`` levels, each tensor packed to whole bytes."""
    bits_per_element = 1 + math.ceil(math.log2(levels + 1))
    return sum(math.ceil((32 + n * bits_per_element) / 8) for n in numels)
