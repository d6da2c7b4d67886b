"""How many client workers fit on one GPU, measured instead of guessed.

A guessed ``resources.gpus_per_worker`` either runs out of memory or leaves half a GPU idle. The probe
builds each distinct model of a sweep and trains a few of its clients through the engine's own
:class:`~runner.engine.client_worker.ClientWorker`, which holds the whole dataset on its device as every
worker of the trial will; so the peak it measures is what one worker of that trial needs. Each
measurement runs in a fresh process, so peaks never carry over from one model to the next and the
CUDA context is the process's own.

It lives in the study layer because it reads a sweep's trials and writes beside the sweep's results
(``<results>/<sweep>/probe.json``), where ``--dry-run`` finds it again.

- On a GPU, a worker's memory is the caching allocator's peak (``torch.cuda.max_memory_reserved``, what
  the process really keeps, which is at least ``max_memory_allocated``) plus the CUDA context (this
  process's use as NVML sees it, less what the allocator holds).
- On a CPU, it reports the worker process's peak resident set, and how much of it the trial's own data,
  model and training added (the growth from the process as it stood after its imports). Asked to plan
  for a GPU from a CPU (``gpu_memory_gib``), it estimates a worker's GPU memory as that growth plus
  :data:`CUDA_CONTEXT_ESTIMATE_MIB`, and says it is an estimate.

Workers per GPU = floor(GPU memory x (1 - margin) / memory per worker).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

from runner.config import ADDED_FIELDS, TrialConfig, config_columns
from runner.engine.storage import Location, join
from runner.results_layout import PROBE, probe_file
from runner.trial_identity import size_text

if TYPE_CHECKING:
    from runner.study.sweep_expand import LoadedSweep

PROBE_FILE = PROBE  # the name's home: runner/results_layout.py
CUDA_CONTEXT_ESTIMATE_MIB = 500.0  # a typical CUDA context with torch's kernels loaded (planning from a CPU only)
PRECISION_FIELDS = tuple(k for k in config_columns() if k.rsplit(".", 1)[-1] in ("precision", "dtype", "amp"))
MiB = 2**20


def model_key(cfg: TrialConfig) -> dict[str, Any]:
    """What decides a worker's memory: the model, the data it holds, the batch size and the precision."""
    m, flat = cfg.model, cfg.flat()
    return {"dataset": cfg.data.dataset, "arch": m.arch, "parameterization": m.parameterization,
            "gamma": m.gamma, "ratio": m.ratio, "param_ratio": m.param_ratio, "tanh": m.tanh,
            "batch_size": cfg.train.batch_size,
            **{k: flat.get(k) for k in PRECISION_FIELDS}}


def key_text(key: dict[str, Any], device: str) -> str:
    """``cifar10 vgg16-fedpara g0.1 batch 64 [cuda]``: the key as it is shown and stored."""
    size = size_text(key["gamma"], key["ratio"], key["param_ratio"])
    knob = "" if key["parameterization"] == "original" else f" {size}"
    # a field at the value it had before it existed is not shown: keys of probes stored before then stay valid
    extra = "".join(f" {k.rsplit('.', 1)[-1]} {key[k]}" for k in PRECISION_FIELDS
                    if key.get(k) not in (None, ADDED_FIELDS.get(k)))
    tanh = " tanh" if key["tanh"] else ""
    return (f"{key['dataset']} {key['arch']}-{key['parameterization']}{knob}{tanh} batch {key['batch_size']}"
            f"{extra} [{device}]")


@dataclass(frozen=True)
class Measurement:
    """One model's worker, trained on one device."""

    key: str
    device: str  # "cuda" or "cpu"
    device_name: str
    peak_mib: float  # CUDA: the allocator's peak reserved; CPU: the process's peak resident set
    growth_mib: float  # CPU: what the trial added to the process's resident set; CUDA: peak allocated
    context_mib: float  # CUDA: the context's share of the process (NVML); CPU: 0
    updates_per_second: float  # clients trained per second (each its local epochs over its data)
    clients_timed: int
    gpu_memory_gib: float | None  # the GPU the recommendation is for (measured, or given for planning)
    margin: float
    estimated: bool  # True when a GPU recommendation is planned from a CPU run

    @property
    def worker_mib(self) -> float:
        """Memory one worker needs on the GPU."""
        if self.device == "cuda":
            return self.peak_mib + self.context_mib
        return self.growth_mib + CUDA_CONTEXT_ESTIMATE_MIB

    @property
    def workers_per_gpu(self) -> int | None:
        if self.gpu_memory_gib is None:
            return None
        return max(0, math.floor(self.gpu_memory_gib * 1024 * (1 - self.margin) / self.worker_mib))

    def recommendation(self) -> str:
        """``6 workers per 24 GiB GPU fit (measured 3.1 GiB each, 10 % margin)``."""
        per = self.workers_per_gpu
        if per is None:
            return (f"peak resident memory {self.peak_mib / 1024:.2f} GiB a worker process "
                    f"({self.growth_mib / 1024:.2f} GiB for its data, model and training); no GPU measured")
        how = "estimated from a CPU run" if self.estimated else "measured"
        return (f"{per} workers per {self.gpu_memory_gib:g} GiB GPU fit ({how} {self.worker_mib / 1024:.2f} GiB each, "
                f"{self.margin * 100:g} % margin)")


# --- measuring (in a fresh process each) -----------------------------------------------------------

def measure(cfg: TrialConfig, device: str, *, clients: int = 2, margin: float = 0.1,
            gpu_memory_gib: float | None = None) -> Measurement:
    """Build ``cfg``'s worker on ``device`` in a fresh process, train one warm-up client and then
    ``clients`` more of round 1's clients, and measure."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        raw = pool.submit(_measure_here, cfg, device, clients).result()
    total = raw.pop("gpu_total_gib")
    return Measurement(key_text(model_key(cfg), device), device, margin=margin,
                       gpu_memory_gib=gpu_memory_gib if gpu_memory_gib is not None else total,
                       estimated=device == "cpu" and gpu_memory_gib is not None, **raw)


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB


def _measure_here(cfg: TrialConfig, device: str, clients: int) -> dict[str, Any]:
    import torch

    from runner.engine.accelerator import peak_memory_mib
    from runner.engine.client_worker import ClientWorker
    from runner.engine.model import initial_model
    from runner.engine.seeding import round_clients
    from runner.engine.wire import to_wire

    use_cuda = device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: CUDA is not available here")
    gpus = cfg.resources.gpus_per_worker or 1.0
    cfg = dataclasses.replace(cfg, resources=dataclasses.replace(cfg.resources, gpus_per_worker=gpus if use_cuda
                                                                                          else 0.0))
    before = _rss_mib()
    worker = ClientWorker(cfg, 0, 1)  # the whole dataset on the device, as every worker of the trial holds it
    algorithm = cfg.algorithm.build()
    _, initial_global, initial_local = initial_model(cfg, algorithm)
    worker.setup(initial_local, initial_global)
    payload = to_wire(algorithm.broadcast(initial_global, algorithm.init_server_state(initial_global)))
    d = cfg.data
    sampled = round_clients(cfg, 1)
    order = sampled + [k for k in range(d.num_clients) if k not in sampled]
    warmup, timed = order[0], order[1:1 + clients] or order[:1]
    worker.train(1, [warmup], [], payload, cfg.train.lr)  # first use: lazy initialization, kernel choice
    if use_cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    worker.train(1, timed, [], payload, cfg.train.lr)
    if use_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {"updates_per_second": len(timed) / seconds, "clients_timed": len(timed)}
    if use_cuda:
        props = torch.cuda.get_device_properties(0)
        reserved = torch.cuda.max_memory_reserved() / MiB
        result.update(device_name=props.name, peak_mib=reserved, growth_mib=torch.cuda.max_memory_allocated() / MiB,
                      context_mib=_cuda_context_mib(), gpu_total_gib=props.total_memory / 2**30)
    else:
        peak = peak_memory_mib(torch.device("cpu"))
        result.update(device_name=f"CPU, {torch.get_num_threads()} threads", peak_mib=peak,
                      growth_mib=max(0.0, peak - before), context_mib=0.0, gpu_total_gib=None)
    return result


def _cuda_context_mib() -> float:
    """This process's GPU memory as NVML sees it, less what torch's allocator holds: the CUDA context."""
    import torch

    try:
        import ray._private.thirdparty.pynvml as pynvml

        pynvml.nvmlInit()
        index = int(os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or 0)
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        used = next(p.usedGpuMemory for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
                    if p.pid == os.getpid())
        pynvml.nvmlShutdown()
        return max(0.0, used / MiB - torch.cuda.memory_reserved() / MiB)
    except Exception:  # NVML missing, or a container that hides process ids: use the usual size
        return CUDA_CONTEXT_ESTIMATE_MIB


# --- probe.json beside the sweep's results ------------------------------------------------------------

def probe_path(results_dir: str | Location) -> Location:
    return probe_file(results_dir)


def save(results_dir: str | Location, measurements: Iterable[Measurement]) -> Location:
    """Add (or replace) measurements in ``<results>/<sweep>/probe.json``, keyed by model and device."""
    stored = load(results_dir)
    for m in measurements:
        stored[m.key] = m
    path = probe_path(results_dir)
    path.write_bytes(json.dumps({k: dataclasses.asdict(m) for k, m in sorted(stored.items())}, indent=2).encode())
    return path


def load(results_dir: str | Location) -> dict[str, Measurement]:
    path = probe_path(results_dir)
    if not path.exists():
        return {}
    return {k: Measurement(**v) for k, v in json.loads(path.read_bytes()).items()}


def trial_measurement(cfg: TrialConfig, stored: dict[str, Measurement]) -> Measurement | None:
    """The trial's model measured on a GPU if it was, else on a CPU."""
    key = model_key(cfg)
    return stored.get(key_text(key, "cuda")) or stored.get(key_text(key, "cpu"))


def dry_run_lines(trials: Sequence[TrialConfig], results_dir: str | Location) -> list[str]:
    """Per trial, what the probe found for its model and whether its ``gpus_per_worker`` agrees."""
    try:
        stored = load(results_dir)
    except OSError as error:  # results on storage this machine cannot reach: the dry run goes on without
        return [f"probe: cannot read {probe_path(results_dir)} ({error})"]
    if not stored:
        return [f"probe: no measurements in {probe_path(results_dir)} "
                f"(python -m runner.probe <sweep file> measures them)"]
    lines = [f"probe ({probe_path(results_dir)}):"]
    for index, trial in enumerate(trials, start=1):
        m = trial_measurement(trial, stored)
        if m is None:
            lines.append(f"  {index}: not measured ({key_text(model_key(trial), 'cuda')})")
            continue
        verdict = ""
        share, per = trial.resources.gpus_per_worker, m.workers_per_gpu
        if share > 0 and per is not None:
            asked = math.floor(1 / share + 1e-6)
            advice = f"use gpus_per_worker >= {1 / per:.3g}" if per else "one worker alone does not fit"
            verdict = f"; gpus_per_worker {share:g} puts {asked} on a GPU: " + (
                "fits" if asked <= per else f"TOO MANY, {advice}")
        lines.append(f"  {index}: {m.recommendation()}, {m.updates_per_second:.3g} client updates/s "
                     f"on {m.device_name}{verdict}")
    return lines


def default_device() -> str:
    """Where to measure when not told: a GPU if this machine has one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def probe_sweep(loaded: LoadedSweep, device: str, *, clients: int, margin: float,
                gpu_memory_gib: float | None, saved_note: str = "") -> Iterator[str]:
    """Measure each distinct model of a sweep on ``device`` and save the measurements beside its results; the
    lines to print, each model's before it is measured (measuring takes a while), the last ending in
    ``saved_note``."""
    sweep, trials = loaded.sweep, loaded.trials
    models = distinct_models(trials)
    yield f"probe {sweep.name}: {len(models)} distinct models of {len(trials)} trials, on {device}"
    measured = []
    for cfg in models:
        yield f"  {key_text(model_key(cfg), device)} ..."
        m = measure(cfg, device, clients=clients, margin=margin, gpu_memory_gib=gpu_memory_gib)
        measured.append(m)
        yield (f"    peak {m.peak_mib:.0f} MiB ({'allocator, reserved' if device == 'cuda' else 'resident set'}), "
               f"{m.growth_mib:.0f} MiB {'allocated' if device == 'cuda' else 'added by the trial'}"
               + (f", CUDA context {m.context_mib:.0f} MiB" if device == "cuda" else "")
               + f"; {m.updates_per_second:.3g} client updates/s on {m.device_name}")
        yield f"    {m.recommendation()}"
    yield f"saved {save(join(loaded.results_root, sweep.name), measured)}{saved_note}"


def distinct_models(trials: Sequence[TrialConfig]) -> list[TrialConfig]:
    """One trial for each distinct model key, in sweep order."""
    seen: dict[str, TrialConfig] = {}
    for trial in trials:
        seen.setdefault(json.dumps(model_key(trial), sort_keys=True), trial)
    return list(seen.values())
