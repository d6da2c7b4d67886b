"""Seconds per round: the Ray runner against a plain single-process PyTorch FedAvg loop.

Same workload for both: synthetic 32×32 images, 100 clients (IID), 16 sampled per round, 1 local
epoch, batch 32, augmentation on, FedAvg. The plain loop is what a researcher would write in one
script (torch using every core through intra-op threads); the runner spreads clients over worker
actors with one thread each. Prints a table of median and best seconds per round; the first round of
each is warm-up and not counted, and the two loops take turns (--repeats) so that a shared machine's
drift does not favor either. (On the 2-vCPU CI machine a whole run of the plain loop is sometimes up
to 2x slower, even without Ray: its two threads then share one core. The best round shows the
comparison free of that.)

    python bench/runner_vs_plain.py [--rounds 6] [--repeats 2] [--workers 2] [--models cnn fc2 vgg16]
    python bench/runner_vs_plain.py --workers 4 --gpus-per-worker 0.25      # on a GPU machine
    python bench/runner_vs_plain.py --profile --models cnn fc2   # CPU ms per client, phase by phase

Besides the default layout the table has 1-thread rows: the plain loop at one thread against the runner
at one worker x one thread, where the runner's per-client overhead shows undiluted by parallelism. For the
runner it also gives the median milliseconds a round spends outside its slowest worker's training call
(the rows' round_seconds less worker_seconds: broadcast, partial sums, merge, server step, Ray's latency).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import pickle
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from partitions import load_dataset, partition_clients
from runner.algorithms import Participation, Upload, forward_precision
from runner.config import TrialConfig
from runner.engine.accelerator import memory_format_for, use_fast_cuda_kernels
from runner.engine.augment import random_crop_flip
from runner.engine.model import trial_model
from runner.engine.seeding import round_clients

WORKLOADS = {
    "cnn": ("cnn", "original", None),
    "fc2": ("fc2", "original", None),  # overhead-bound: tiny compute per client
    "vgg16": ("vgg16", "fedpara", 0.1),
}


def config(arch: str, parameterization: str, gamma: float | None, rounds: int, workers: int,
           results: str, gpus_per_worker: float = 0.0, cpus_per_worker: float | None = None, *,
           num_clients: int = 100, clients_per_round: int = 16, batch_size: int = 32,
           precision: str = "fp32") -> TrialConfig:
    return TrialConfig.from_dict({
        "data": {"dataset": "synthetic", "partition": "iid", "num_clients": num_clients,
                 "clients_per_round": clients_per_round},
        "model": {"arch": arch, "parameterization": parameterization, "gamma": gamma},
        "train": {"rounds": rounds, "local_epochs": 1, "batch_size": batch_size, "lr": 0.05, "eval_every": 10_000,
                  "precision": precision},
        "resources": {"num_workers": workers, "cpus_per_worker": cpus_per_worker or round(1.7 / workers, 2),
                      "driver_cpus": 0.2, "gpus_per_worker": gpus_per_worker},
        "logging": {"results_dir": results, "checkpoint_every": 0, "wandb": "disabled"},
    })


class Phases:
    """CPU seconds of this thread per named phase: ``lap(name)`` charges the time since the last lap.
    Thread time, so other processes on a shared machine do not inflate it (with one torch thread every
    kernel runs on the calling thread)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.last = time.thread_time()
        self.open = ["rest"]  # the phases being timed, innermost last

    def lap(self, name: str | None = None) -> None:
        now = time.thread_time()
        self.seconds[name or self.open[-1]] += now - self.last
        self.last = now

    def timed(self, name: str, function: Callable) -> Callable:
        """``function``, its calls charged to ``name`` (minus the calls timed inside it)."""
        def wrapper(*args, **kwargs):
            self.lap()
            self.open.append(name)
            try:
                return function(*args, **kwargs)
            finally:
                self.lap()
                self.open.pop()
        return wrapper


def plain_loop(cfg: TrialConfig, device: torch.device, threads: int | None = None,
               phases: Phases | None = None) -> list[float]:
    """FedAvg in one process: the baseline a researcher would write without Ray (all cores by default).

    On CUDA it gets the runner's kernel settings (cuDNN autotuning, TF32, channels-last), and bf16 runs its
    forward passes under autocast as the runner does, so a comparison on a GPU measures the sharing alone."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    use_fast_cuda_kernels(device)
    lap = phases.lap if phases is not None else lambda name: None
    d, t = cfg.data, cfg.train
    data = load_dataset(d.dataset, d.root, seed=cfg.seed)
    parts = partition_clients(data, d.partition, d.num_clients, seed=cfg.seed).train
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    model = trial_model(cfg).to(device)
    layout = memory_format_for(model, device)
    model.to(memory_format=layout)
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    times = []
    for r in range(1, t.rounds + 1):
        start = time.perf_counter()
        lap("rest")
        if phases is not None and r == 2:  # round 1 is warm-up
            phases.seconds.clear()
        sums, total = {k: torch.zeros_like(v) for k, v in global_state.items()}, 0
        for k in round_clients(cfg, r):
            model.load_state_dict(global_state)
            opt = torch.optim.SGD(model.parameters(), lr=t.lr)
            g = torch.Generator(device).manual_seed(r * 1000 + k)
            index = torch.as_tensor(parts[k], device=device)
            x, y = x_train[index], y_train[index]
            lap("load")
            for idx in torch.randperm(len(y), generator=g, device=device).split(t.batch_size):
                batch = ((random_crop_flip(x[idx].float() / 255, g) - mean) / std).contiguous(memory_format=layout)
                lap("batches")
                opt.zero_grad()
                with forward_precision(t.precision, device):
                    loss = F.cross_entropy(model(batch).float(), y[idx])
                loss.backward()
                opt.step()
                lap("train")
            for name, v in model.state_dict().items():
                sums[name] += len(y) * (v - global_state[name])
            total += len(y)
            lap("sum")
        global_state = {k: v + sums[k] / total for k, v in global_state.items()}
        lap("server")
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def runner_loop(cfg: TrialConfig) -> tuple[list[float], float, list[float]]:
    """Wall-clock seconds of rounds 2…N as the trial sees them (the driver's round plus writing the row),
    the busiest worker's peak memory in MiB, and each round's seconds outside the slowest worker's training
    call (the driver's aggregation and broadcast, and Ray's latencies), from the rows."""
    from runner.engine.trial import RoundSink, run_rounds
    from runner.study.results import RoundsTable, rounds_path

    class RoundClock(RoundSink):
        """When each row was written (every round: Tune's report sees evaluated rounds only)."""

        def __init__(self) -> None:
            self.stamps: list[float] = []

        def write(self, row: Mapping[str, Any]) -> None:
            self.stamps.append(time.perf_counter())

    table, clock = RoundsTable(rounds_path(cfg.logging.results_dir, cfg.trial_name)), RoundClock()
    run_rounds(cfg, [table, clock])
    quiesce()
    rows = table.frame()
    outside = (rows["round_seconds"] - rows["worker_seconds"]).tolist()
    return [b - a for a, b in itertools.pairwise(clock.stamps)], float(rows["worker_peak_mib"].max()), outside


def quiesce(timeout_s: float = 30.0) -> None:
    """Wait until the trial's workers are gone and the machine is quiet: the plain loop's threads slow
    down by up to 2x while killed actors still exit in the background."""
    import ray

    deadline = time.monotonic() + timeout_s
    while ray.util.list_named_actors() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)


def profile_runner(cfg: TrialConfig, rounds: int) -> tuple[Phases, int]:
    """The runner's per-client path in this process at one thread (no Ray): a ClientWorker trains every
    round's clients, its partial sum goes through pickle as Ray ships it, and the driver's steps follow.
    Returns the phases of rounds 2…N and the number of clients they trained."""
    from runner.engine.aggregation import WeightedSum
    from runner.engine.client_worker import ClientWorker
    from runner.engine.wire import to_wire

    torch.set_num_threads(1)
    worker = ClientWorker(cfg, 0, 1)
    algorithm = cfg.algorithm.build()
    model = trial_model(cfg)
    global_state = {n: t.detach().clone() for n, t in model.state_dict().items()}
    worker.setup({}, global_state)
    sizes = worker.client_sizes()
    phases, clients = Phases(), 0
    patches = [(worker, "train_preprocess", "batches"), (worker, "_load", "load"), (worker, "_keep", "state"),
               (worker.algorithm, "train_client", "train"), (WeightedSum, "add", "sum"), (Upload, "apply", "upload")]
    patches = [patch for patch in patches if hasattr(patch[0], patch[1])]  # an older worker lacks some phases
    originals = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _ in patches]
    for owner, attribute, phase in patches:
        setattr(owner, attribute, phases.timed(phase, getattr(owner, attribute)))
    try:
        for r in range(1, rounds + 1):
            if r == 2:  # round 1 is warm-up
                phases.seconds.clear()
                clients = 0
            sampled = round_clients(cfg, r)
            phases.lap("rest")
            payload = pickle.loads(pickle.dumps(to_wire(algorithm.broadcast(global_state, {}))))
            phases.lap("driver: ship payload")
            _, (partial, *_) = worker.train(r, sampled, [], payload, cfg.train.lr)
            phases.lap("rest")
            received = pickle.loads(pickle.dumps(partial))
            phases.lap("ship partial sum")
            total = WeightedSum()
            total.merge(received)
            mean = total.mean()
            phases.lap("driver: merge, mean")
            participation = Participation(sum(sizes[k] for k in sampled), sum(sizes))
            global_state = algorithm.server_update(global_state, {}, mean, participation)
            phases.lap("server")
            clients += len(sampled)
    finally:
        for owner, attribute, original in originals:
            setattr(owner, attribute, original)
    return phases, clients


def profile(models: list[str], rounds: int, repeats: int) -> None:
    """Print CPU ms per client, phase by phase, of the plain loop and the runner at one thread."""
    for name in models:
        plain: dict[str, list[float]] = collections.defaultdict(list)
        runner: dict[str, list[float]] = collections.defaultdict(list)
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as results:
                cfg = config(*WORKLOADS[name], rounds, 1, results, cpus_per_worker=1.0)
                phases = Phases()
                plain_loop(cfg, torch.device("cpu"), threads=1, phases=phases)
                per_round = cfg.data.clients_per_round
                for phase, seconds in phases.seconds.items():
                    plain[phase].append(1000 * seconds / ((rounds - 1) * per_round))
                phases, clients = profile_runner(cfg, rounds)
                for phase, seconds in phases.seconds.items():
                    runner[phase].append(1000 * seconds / clients)
        plain_total = statistics.median([sum(v) for v in zip(*plain.values())])
        runner_total = statistics.median([sum(v) for v in zip(*runner.values())])
        print(f"\n{name}: CPU ms per client at 1 thread, rounds 2…{rounds}, median of {repeats} (the runner in "
              f"process, no Ray; 'ship' is pickling as Ray does)\n")
        print("| phase (train: SGD steps; batches: index, augment, normalize) | plain loop | runner |\n|---|---|---|")
        for phase in dict.fromkeys([*plain, *runner]):
            cells = [f"{statistics.median(side[phase]):.2f}" if phase in side else "" for side in (plain, runner)]
            print(f"| {phase} | {cells[0]} | {cells[1]} |")
        print(f"| total | {plain_total:.2f} | {runner_total:.2f} |")
        print(f"\nrunner overhead per client: {runner_total - plain_total:+.2f} ms "
              f"({100 * (runner_total - plain_total) / plain_total:+.1f} % of the plain loop)", flush=True)


def compare(args: argparse.Namespace, device: torch.device, results: str, layout: str,
            workers: int, cpus_per_worker: float | None, plain_threads: int | None) -> list[tuple]:
    """Median and best seconds per round of the plain loop and the runner, alternating, per model."""
    rows = []
    for name in args.models:
        plain, runner, outside, peak = [], [], [], 0.0
        for repeat in range(args.repeats):  # alternating evens out slow drifts of a shared machine
            cfg = config(*WORKLOADS[name], args.rounds, workers, os.path.join(results, f"{name}-{layout}-{repeat}"),
                         args.gpus_per_worker, cpus_per_worker)
            plain += plain_loop(cfg, device, plain_threads)[1:]  # the first round of each is warm-up
            times, worker_peak, overhead = runner_loop(cfg)  # rounds 2…N
            runner += times[:-1]  # the last round also evaluates
            outside += overhead[1:-1]
            peak = max(peak, worker_peak)
        rows.append((name, layout, statistics.median(plain), statistics.median(runner), min(plain), min(runner), peak,
                     statistics.median(outside)))
        print(f"{name} ({layout}): plain {rows[-1][2]:.3f}s/round, runner {rows[-1][3]:.3f}s/round", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="alternate plain and runner this many times")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["cnn", "fc2", "vgg16"], choices=sorted(WORKLOADS))
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="e.g. 0.25 with --workers 4: four workers share one GPU "
                             "(the plain loop then runs on it too)")
    parser.add_argument("--no-single-thread", action="store_true",
                        help="leave out the rows of plain at 1 thread against runner at 1 worker x 1 thread")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing rounds: CPU ms per client, phase by phase, at 1 thread (no Ray)")
    args = parser.parse_args()
    if args.profile:
        profile(args.models, args.rounds, args.repeats)
        return

    import ray

    device = torch.device("cuda" if args.gpus_per_worker > 0 else "cpu")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as results:
        rows = compare(args, device, results, f"{args.workers} workers", args.workers, None, None)
        if not args.no_single_thread and device.type == "cpu":
            rows += compare(args, device, results, "1 thread", 1, 1.0, 1)
    ray.shutdown()
    where = f"{torch.cuda.get_device_name()}, {args.gpus_per_worker} GPU" if device.type == "cuda" else "CPU"
    print(f"\n{os.cpu_count()} CPU cores; layouts: {args.workers} workers ({where} each) against the plain loop on "
          f"all cores, and 1 worker x 1 thread against the plain loop at 1 thread; 16 clients/round, 1 local "
          f"epoch, synthetic 32x32; median of {args.repeats} x {args.rounds - 1} rounds (plain) and "
          f"{args.repeats} x {args.rounds - 2} (runner)\n")
    memory = "CUDA MiB" if device.type == "cuda" else "RSS MiB"
    print(f"| model | layout | plain loop s/round | runner s/round | runner / plain | best round: plain, runner, "
          f"ratio | runner ms/round outside the slowest worker's training | runner client updates/s | "
          f"worker peak {memory} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, layout, plain_time, runner_time, plain_best, runner_best, peak, outside in rows:
        print(f"| {name} | {layout} | {plain_time:.3f} | {runner_time:.3f} | {runner_time / plain_time:.2f} | "
              f"{plain_best:.3f}, {runner_best:.3f}, {runner_best / plain_best:.2f} | {1000 * outside:.1f} | "
              f"{16 / runner_time:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
