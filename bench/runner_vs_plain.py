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
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from partitions import load_dataset, partition_clients
from runner.config import TrialConfig
from runner.engine.augment import random_crop_flip
from runner.engine.model import trial_model
from runner.engine.seeding import sample_clients

WORKLOADS = {
    "cnn": ("cnn", "original", None),
    "fc2": ("fc2", "original", None),  # overhead-bound: tiny compute per client
    "vgg16": ("vgg16", "fedpara", 0.1),
}


def config(arch: str, parameterization: str, gamma: float | None, rounds: int, workers: int,
           results: str, gpus_per_worker: float = 0.0) -> TrialConfig:
    return TrialConfig.from_dict({
        "data": {"dataset": "synthetic", "partition": "iid", "num_clients": 100, "clients_per_round": 16},
        "model": {"arch": arch, "parameterization": parameterization, "gamma": gamma},
        "train": {"rounds": rounds, "local_epochs": 1, "batch_size": 32, "lr": 0.05, "eval_every": 10_000},
        "resources": {"num_workers": workers, "cpus_per_worker": round(1.7 / workers, 2), "driver_cpus": 0.2,
                      "gpus_per_worker": gpus_per_worker},
        "logging": {"results_dir": results, "checkpoint_every": 0, "wandb": "disabled"},
    })


def plain_loop(cfg: TrialConfig, device: torch.device) -> list[float]:
    """FedAvg in one process: the baseline a researcher would write without Ray."""
    torch.set_num_threads(os.cpu_count() or 1)
    d, t = cfg.data, cfg.train
    data = load_dataset(d.dataset, d.root, seed=cfg.seed)
    parts = partition_clients(data, d.partition, d.num_clients, seed=cfg.seed).train
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    model = trial_model(cfg).to(device)
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    times = []
    for r in range(1, t.rounds + 1):
        start = time.perf_counter()
        sums, total = {k: torch.zeros_like(v) for k, v in global_state.items()}, 0
        for k in sample_clients(cfg.seed, r, d.num_clients, d.clients_per_round):
            model.load_state_dict(global_state)
            opt = torch.optim.SGD(model.parameters(), lr=t.lr)
            g = torch.Generator(device).manual_seed(r * 1000 + k)
            index = torch.as_tensor(parts[k], device=device)
            x, y = x_train[index], y_train[index]
            for idx in torch.randperm(len(y), generator=g, device=device).split(t.batch_size):
                batch = random_crop_flip(x[idx].float() / 255, g)
                opt.zero_grad()
                F.cross_entropy(model((batch - mean) / std), y[idx]).backward()
                opt.step()
            for name, v in model.state_dict().items():
                sums[name] += len(y) * (v - global_state[name])
            total += len(y)
        global_state = {k: v + sums[k] / total for k, v in global_state.items()}
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def runner_loop(cfg: TrialConfig) -> tuple[list[float], float]:
    """Wall-clock seconds of rounds 2…N as the trial sees them (the driver's round plus writing the row),
    and the busiest worker's peak memory in MiB."""
    from runner.study.trial import run_trial

    reported: list[float] = []
    rows = run_trial(cfg, report=lambda metrics: reported.append(time.perf_counter()))
    quiesce()
    return [b - a for a, b in itertools.pairwise(reported)], float(rows["worker_peak_mib"].max())


def quiesce(timeout_s: float = 30.0) -> None:
    """Wait until the trial's workers are gone and the machine is quiet: the plain loop's threads slow
    down by up to 2x while killed actors still exit in the background."""
    import ray

    deadline = time.monotonic() + timeout_s
    while ray.util.list_named_actors() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="alternate plain and runner this many times")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["cnn", "fc2", "vgg16"], choices=sorted(WORKLOADS))
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="e.g. 0.25 with --workers 4: four workers share one GPU "
                             "(the plain loop then runs on it too)")
    args = parser.parse_args()

    import ray

    device = torch.device("cuda" if args.gpus_per_worker > 0 else "cpu")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    rows = []
    with tempfile.TemporaryDirectory() as results:
        for name in args.models:
            plain, runner, peak = [], [], 0.0
            for repeat in range(args.repeats):  # alternating evens out slow drifts of a shared machine
                cfg = config(*WORKLOADS[name], args.rounds, args.workers, os.path.join(results, f"{name}-{repeat}"),
                             args.gpus_per_worker)
                plain += plain_loop(cfg, device)[1:]  # the first round of each is warm-up
                times, worker_peak = runner_loop(cfg)  # rounds 2…N
                runner += times[:-1]  # the last round also evaluates
                peak = max(peak, worker_peak)
            rows.append((name, statistics.median(plain), statistics.median(runner), min(plain), min(runner), peak))
            print(f"{name}: plain {rows[-1][1]:.3f}s/round, runner {rows[-1][2]:.3f}s/round", flush=True)
    ray.shutdown()
    where = f"{torch.cuda.get_device_name()}, {args.gpus_per_worker} GPU" if device.type == "cuda" else "CPU"
    print(f"\n{os.cpu_count()} CPU cores, {args.workers} workers ({where} each), 16 clients/round, 1 local epoch, "
          f"synthetic 32x32; median of {args.repeats} x {args.rounds - 1} rounds (plain) and "
          f"{args.repeats} x {args.rounds - 2} (runner)\n")
    memory = "CUDA MiB" if device.type == "cuda" else "RSS MiB"
    print(f"| model | plain loop s/round | runner s/round | runner / plain | best round: plain, runner, ratio "
          f"| runner client updates/s | worker peak {memory} |")
    print("|---|---|---|---|---|---|---|")
    for name, plain_time, runner_time, plain_best, runner_best, peak in rows:
        print(f"| {name} | {plain_time:.3f} | {runner_time:.3f} | {runner_time / plain_time:.2f} | "
              f"{plain_best:.3f}, {runner_best:.3f}, {runner_best / plain_best:.2f} | {16 / runner_time:.1f} | "
              f"{peak:.0f} |")


if __name__ == "__main__":
    main()
