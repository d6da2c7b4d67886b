"""The exact sum's two inner steps, as one compiled loop each on a CPU and as torch ops anywhere else.

:class:`~runner.engine.aggregation.WeightedSum` spends a client's time in two steps per block of values:
forming q = round((a − b)·2^40) with its range check, and adding n·q to the float64 words. As torch ops
that is six passes over memory, one of them a float32-to-float64 add torch does not vectorize; as two C loops
vectorized for this CPU it is two passes (``bench/runner_vs_plain.py --profile`` shows the difference per
client; the README, "Benchmarks", gives its numbers). The C loops do the same IEEE operations in the same
order, so both give bit-identical words (tests compare them on edge values).

The C source ships with the package and is compiled on first use with the machine's C compiler (``$CC``,
else ``cc``) for this CPU, into a per-user cache (``$FEDPARA_KERNEL_CACHE``, else ``~/.cache/fedpara-runner``)
under a name that hashes the source, compiler, flags and CPU; it is written to a temporary name and renamed,
so workers that start together on a node may each compile, never read half a file. Without a compiler, or if
the build fails, the torch ops run (slower, the same bits) and one warning says why.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("exact_sum_kernel.c")
SCALE = 2.0 ** 40  # values are summed as integers in units of 2^-40
LIMIT = 2.0 ** 60  # |q| below this, i.e. |v| < 2^20: the values the sum holds exactly
# Plain IEEE arithmetic: no -ffast-math. -fno-trapping-math lets the compiler vectorize the selects.
FLAGS = ("-O3", "-shared", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off")
TUNED = ("-march=native",)  # tried first; dropped if this compiler does not take it

Parts = Sequence[tuple[int, Tensor, Tensor | None]]  # (offset in the block, a, b or None): the values a − b, or a


class TorchKernel:
    """The two steps as torch ops: on any device (on a GPU the whole buffer is one block and one launch each)."""

    name = "torch ops"

    def quantize(self, x: Tensor, parts: Parts) -> tuple[float, bool]:
        """Fill ``x`` with q = round(v·2^40) of the parts' values; returns (max |q| of the values in range,
        whether any value is out of range: |q| ≥ 2^60, NaN or infinite, left in ``x`` as computed)."""
        for offset, a, b in parts:
            if b is None:
                x[offset:offset + a.numel()].copy_(a)
            else:
                torch.sub(a, b, out=x[offset:offset + a.numel()])
        x.mul_(SCALE).round_()  # exact scaling by a power of two, then one rounding
        smallest, largest = extremes(x)
        if not -LIMIT < smallest <= largest < LIMIT:  # also when NaN: comparisons with NaN are false
            return 0.0, True
        return max(largest, -smallest), False

    def add(self, low: Tensor, x: Tensor, weight: float) -> None:
        """low += weight·x in float64 (exact: the caller keeps the words below 2^53)."""
        low.add_(x, alpha=weight)


class CompiledKernel:
    """The two steps as the C loops in exact_sum_kernel.c, on CPU tensors."""

    name = "compiled"

    def __init__(self, library: ctypes.CDLL) -> None:
        self._quantize = library.quantize
        self._quantize.restype = ctypes.c_int32
        self._quantize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                   ctypes.POINTER(ctypes.c_float)]
        self._add = library.add_scaled
        self._add.restype = None
        self._add.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_double]

    def quantize(self, x: Tensor, parts: Parts) -> tuple[float, bool]:
        """As :meth:`TorchKernel.quantize`, one pass per part."""
        peak, outside = 0.0, False
        part_peak = ctypes.c_float()  # per call, so that threads summing at once do not share it
        for offset, a, b in parts:
            if a.dtype != torch.float32 or (b is not None and b.dtype != torch.float32):
                a, b = (a if b is None else a - b).float(), None  # as torch.sub(out=float32) does: compute, then cast
            a = a.contiguous()
            b = None if b is None else b.contiguous()
            outside |= bool(self._quantize(a.data_ptr(), None if b is None else b.data_ptr(),
                                           x.data_ptr() + 4 * offset, a.numel(), ctypes.byref(part_peak)))
            peak = max(peak, part_peak.value)
        return (0.0, True) if outside else (peak, False)

    def add(self, low: Tensor, x: Tensor, weight: float) -> None:
        self._add(low.data_ptr(), x.data_ptr(), x.numel(), weight)


Kernel = TorchKernel | CompiledKernel


def kernel_for(device: torch.device) -> Kernel:
    """The compiled loops on a CPU when this machine can build them; torch ops otherwise."""
    if device.type == "cpu":
        return cpu_kernel()
    return TorchKernel()


@functools.cache
def cpu_kernel() -> Kernel:
    """Built (or found in the cache) once per process."""
    compiler = shlex.split(os.environ.get("CC", "cc"))
    try:
        return CompiledKernel(ctypes.CDLL(str(build(compiler))))
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("the exact sum's C loops could not be built (%s); it runs on torch ops, about twice as "
                       "slow on a CPU", str(error).strip().splitlines()[-1][:300] if str(error).strip() else error)
        return TorchKernel()


def build(compiler: list[str], cache: Path | None = None) -> Path:
    """The shared library for this source, compiler and CPU: from the cache, or compiled into it."""
    cache = cache or Path(os.environ.get("FEDPARA_KERNEL_CACHE") or
                          Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fedpara-runner")
    source = SOURCE.read_bytes()
    errors = []
    for flags in (FLAGS + TUNED, FLAGS):
        key = hashlib.sha256(repr((source, compiler, flags, _cpu())).encode()).hexdigest()[:16]
        target = cache / f"exact_sum_kernel-{key}.so"
        if target.exists():
            return target
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as scratch:
            built = Path(scratch) / target.name
            try:
                done = subprocess.run([*compiler, *flags, "-o", str(built), str(SOURCE)], capture_output=True,
                                      text=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as error:
                raise OSError(f"{shlex.join(compiler)}: {error}") from error
            if done.returncode == 0:
                os.replace(built, target)  # atomic: a worker loading it sees the whole file or none
                return target
            errors.append(done.stderr.strip() or f"{shlex.join(compiler)} exited with {done.returncode}")
    raise OSError(errors[-1])


def _cpu() -> str:
    """What ``-march=native`` compiles for: the CPU's model and feature flags (the machine type elsewhere)."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags", "Features", "CPU part"))]
        return platform.machine() + "".join(dict.fromkeys(lines))
    except OSError:
        return platform.machine() + platform.processor()


def extremes(x: Tensor) -> tuple[float, float]:
    """(min, max) of a float32 block, NaN if it holds one. On a CPU NumPy's vectorized reductions beat
    ``torch.aminmax`` at one thread."""
    if x.device.type == "cpu":
        values = x.numpy()
        return float(values.min()), float(values.max())
    smallest, largest = torch.aminmax(x)
    return float(smallest), float(largest)
