"""Client updates per second on one GPU: the plain loop alone on it against 1, 2, 4 and 8 runner workers
sharing it (each holding 1/W of the GPU), in fp32 and in bf16.

Workload (the paper's CIFAR-10 setting on CIFAR-shaped synthetic data): VGG16-FedPara at γ = 0.1, 5000
images over 16 clients (about 312 each), all 16 trained every round, 1 local epoch, batch 64, FedAvg. The
plain loop gets the runner's kernel settings and autocast (see ``runner_vs_plain.plain_loop``), so the ratio
measures what sharing the GPU between workers buys. Round 1 of each run is warm-up (cuDNN autotuning) and the
runner's last round also evaluates, so neither is counted.

Targets (issue 8; a bench, never a timed test): 4 or more workers reach at least 1.5x the plain loop's client
updates per second at the same precision, and bf16 at least 1.8x fp32.

    python bench/gpu_sharing.py                              # on a GPU machine: W = 1 2 4 8, fp32 and bf16
    python bench/gpu_sharing.py --device cpu --model cnn --workers 1 2 --rounds 3 --clients 4
                                                             # the same code path without a GPU (one logical
                                                             # GPU: workers fall back to the CPU, said in the log)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from runner.engine.accelerator import peak_memory_mib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner_vs_plain import WORKLOADS, config, plain_loop, runner_loop

SYNTHETIC_IMAGES = 5000


@dataclass(frozen=True)
class Row:
    precision: str
    layout: str  # "plain loop" or "W workers"
    workers: int  # 0 for the plain loop
    seconds: float  # median seconds per round
    clients: int  # client updates per round
    peak_mib: float  # the busiest process's peak memory (CUDA on a GPU, resident on a CPU)

    @property
    def updates_per_s(self) -> float:
        return self.clients / self.seconds


def measure(args: argparse.Namespace, device: torch.device, results: str) -> list[Row]:
    """One plain-loop row and one row per worker count, for each precision."""
    rows = []
    cpus = os.cpu_count() or 1
    for precision in args.precisions:
        common = dict(num_clients=args.clients, clients_per_round=args.clients, batch_size=args.batch_size,
                      precision=precision)
        cfg = config(*WORKLOADS[args.model], args.rounds, 1, os.path.join(results, f"plain-{precision}"), **common)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = plain_loop(cfg, device)[1:-1]  # round 1 is warm-up; the same rounds as the runner's
        rows.append(Row(precision, "plain loop", 0, statistics.median(times), args.clients, peak_memory_mib(device)))
        print(f"{precision} plain loop: {rows[-1].seconds:.3f} s/round", flush=True)
        for workers in args.workers:
            # a thread per worker where the cores allow; what is left of the CPUs goes to driver and trial
            cpus_per_worker = round(min(1.0, (cpus - 0.5) / workers), 2)
            cfg = config(*WORKLOADS[args.model], args.rounds, workers,
                         os.path.join(results, f"runner-{precision}-{workers}"), round(1 / workers, 4),
                         cpus_per_worker, **common)
            times, peak, _ = runner_loop(cfg)  # rounds 2…N
            layout = f"{workers} worker{'s' * (workers > 1)}"
            rows.append(Row(precision, layout, workers, statistics.median(times[:-1]), args.clients, peak))
            print(f"{precision} {rows[-1].layout}: {rows[-1].seconds:.3f} s/round", flush=True)
    return rows


def report(rows: list[Row], device_name: str, args: argparse.Namespace) -> str:
    """The Markdown table and the two targets, met or not, as the README shows them."""
    plain = {r.precision: r for r in rows if r.workers == 0}
    fp32 = {r.layout: r for r in rows if r.precision == "fp32"}
    memory = "CUDA" if "cpu" not in device_name.lower() else "RSS"
    lines = [f"{device_name}; {args.model} ({'/'.join(str(v) for v in WORKLOADS[args.model] if v)}), "
             f"{args.clients} clients a round, batch {args.batch_size}, 1 local epoch; median of rounds "
             f"2…{args.rounds - 1}", "",
             f"| precision | layout | GPU per worker | s/round | client updates/s | × plain loop | × fp32 | "
             f"peak {memory} MiB (one process) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share = "1 (alone)" if r.workers == 0 else f"1/{r.workers}"
        versus_plain = r.updates_per_s / plain[r.precision].updates_per_s
        versus_fp32 = (f"{r.updates_per_s / fp32[r.layout].updates_per_s:.2f}"
                       if r.precision != "fp32" and r.layout in fp32 else "")
        lines.append(f"| {r.precision} | {r.layout} | {share} | {r.seconds:.3f} | {r.updates_per_s:.1f} | "
                     f"{versus_plain:.2f} | {versus_fp32} | {r.peak_mib:.0f} |")
    lines.append("")
    for precision, alone in plain.items():
        shared = [r for r in rows if r.precision == precision and r.workers >= 4]
        if shared:
            best = max(shared, key=lambda r: r.updates_per_s)
            ratio = best.updates_per_s / alone.updates_per_s
            lines.append(f"target, {precision}: 4+ workers ≥ 1.5x the plain loop: best {best.layout} at "
                         f"{ratio:.2f}x: {'met' if ratio >= 1.5 else 'NOT met'}")
    if "fp32" in plain and "bf16" in plain:
        fastest = {p: max((r for r in rows if r.precision == p), key=lambda r: r.updates_per_s)
                   for p in ("fp32", "bf16")}
        ratio = fastest["bf16"].updates_per_s / fastest["fp32"].updates_per_s
        lines.append(f"target: bf16 ≥ 1.8x fp32 (best layout of each): {ratio:.2f}x: "
                     f"{'met' if ratio >= 1.8 else 'NOT met'}")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: one logical GPU for Ray, every process on the CPU (a smoke run of this code)")
    parser.add_argument("--model", choices=sorted(WORKLOADS), default="vgg16")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=6,
                        help="rounds a run (>= 4: warm-up and evaluation are not counted)")
    parser.add_argument("--clients", type=int, default=16, help="clients, all trained every round")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the rows, the workload and the table here (bench/gpu_check.py reads it)")
    args = parser.parse_args(argv)
    if args.rounds < 4:
        parser.error(f"--rounds must be at least 4 (round 1 is warm-up, the last evaluates), got {args.rounds}")
    if args.clients < max(args.workers) or SYNTHETIC_IMAGES // args.clients < args.batch_size:
        parser.error(f"--clients {args.clients}: need at least one client a worker and a batch of "
                     f"{args.batch_size} of the {SYNTHETIC_IMAGES} images a client")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here (use --device cpu for a smoke run)")
    return args


def main(argv: list[str] | None = None) -> str:
    import ray

    args = parse(argv)
    device = torch.device(args.device)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=os.cpu_count(), num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as results:
            rows = measure(args, device, results)
    finally:
        if started:
            ray.shutdown()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores), no GPU"
    table = report(rows, name, args)
    print("\n" + table)
    if args.json is not None:
        args.json.write_text(json.dumps({
            "device": name, "model": args.model, "images_a_client": SYNTHETIC_IMAGES // args.clients,
            "local_epochs": 1, "batch_size": args.batch_size, "rows": [dataclasses.asdict(r) for r in rows],
            "table": table}, indent=2))
    return table


if __name__ == "__main__":
    main()
