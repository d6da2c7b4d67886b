"""Putting into and getting from Ray's object store: torch tensors against NumPy arrays.

Why runner/engine/wire.py turns what crosses between driver and workers into arrays. Prints a table of
median milliseconds over several puts and gets of one flat float64 buffer, at a few sizes.

    python bench/object_store.py [--sizes-mb 1 17 68] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import ray
import torch


def timed(value, repeats: int) -> tuple[float, float]:
    puts, gets = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ref = ray.put(value)
        middle = time.perf_counter()
        ray.get(ref)
        puts.append(middle - start)
        gets.append(time.perf_counter() - middle)
        del ref
    return statistics.median(puts) * 1e3, statistics.median(gets) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[1, 17, 68])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    print("| MB | torch put ms | torch get ms | numpy put ms | numpy get ms |")
    print("|---|---|---|---|---|")
    for mb in args.sizes_mb:
        tensor = torch.randn(int(mb * 2**20 / 8), dtype=torch.float64)
        torch_times = timed(tensor, args.repeats)
        numpy_times = timed(tensor.numpy(), args.repeats)
        assert isinstance(ray.get(ray.put(tensor.numpy())), np.ndarray)
        print(f"| {mb:g} | {torch_times[0]:.1f} | {torch_times[1]:.1f} | {numpy_times[0]:.1f} | {numpy_times[1]:.2f} |")
    ray.shutdown()


if __name__ == "__main__":
    main()
