"""Client state as the population grows: SCAFFOLD on FC-2 with 100, 1,000 and 10,000 clients.

One client worker (runner/engine/client_worker.py) in this process, driven round by round as the Driver drives
it: the same plans (this round's and next round's clients), the same server step, and every ``--checkpoint-every``
rounds the same checkpoint (each changed state in a delta piece, merges into runs, the checkpoint file; under a
local results directory). Each client trains on 2 samples for one step, so a run is dominated by what this bench
measures; the synthetic dataset has 2 training samples per client of the largest population for every run
(``data.client_fraction`` keeps 2 per client), so each run loads the same data. Rounds run until every client was
trained at least once, and at least ``--min-rounds`` (at most ``--max-rounds``). Each population runs in its own
process (peak memory is per process).

Prints, per population: rounds, clients visited, the process's resident set after the worker's setup, its most
over the rounds and checkpoints (sampled after each), its peak (``ru_maxrss``: set by generating the dataset), the
most client states in memory at once and their MiB, the files on local disk, bytes a checkpoint wrote (its
deltas, and its merges on average), seconds per checkpoint and per round (median), the most files a resume
reads, and the seconds a fresh worker takes to load all states back.

    python bench/client_state_scale.py [--clients 100 1000 10000] [--per-round 100] [--checkpoint-every 10]
                                       [--min-rounds 30] [--max-rounds 2000] [--parallel]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from partitions.synthetic import synthetic_images
from runner.algorithms import Participation
from runner.config import TrialConfig
from runner.engine import client_worker
from runner.engine.aggregation import WeightedSum
from runner.engine.checkpoint import CheckpointFile
from runner.engine.client_state_pieces import add_checkpoint, referenced
from runner.engine.model import initial_model
from runner.engine.planning import client_cost, plan_round
from runner.engine.seeding import sample_clients
from runner.engine.wire import to_wire

SAMPLES_PER_CLIENT = 2


def config(clients: int, per_round: int, largest: int, results: str, rounds: int) -> TrialConfig:
    return TrialConfig.from_dict({
        "data": {"dataset": "synthetic", "num_clients": clients, "clients_per_round": per_round,
                 "client_fraction": clients / largest},
        "model": {"arch": "fc2", "parameterization": "fedpara", "gamma": 0.1},
        "train": {"rounds": rounds, "local_epochs": 1, "batch_size": SAMPLES_PER_CLIENT, "lr": 0.05},
        "algorithm": {"name": "scaffold"},
        "resources": {"num_workers": 1, "cpus_per_worker": 1},
        "logging": {"results_dir": results, "checkpoint_every": 1, "wandb": "disabled"},
        "seed": 0})


def run_one(clients: int, per_round: int, largest: int, every: int, min_rounds: int,
            max_rounds: int) -> dict[str, Any]:
    train_samples = SAMPLES_PER_CLIENT * largest
    def bigger_synthetic(name: str, root: Any, *, download: bool = False, seed: int = 0) -> Any:
        return synthetic_images(seed, train=train_samples)

    client_worker.load_dataset = bigger_synthetic  # every client of the largest population gets samples
    results = tempfile.mkdtemp(prefix="client-state-bench-")
    try:
        cfg = config(clients, per_round, largest, results, max_rounds)
        algorithm = cfg.algorithm.build()
        _, global_state, initial_local = initial_model(cfg, algorithm)
        worker = client_worker.ClientWorker(cfg, 0, 1)
        worker.setup(initial_local, global_state)
        server_state = algorithm.init_server_state(global_state)
        sizes = worker.client_sizes()
        costs = [client_cost(n, cfg.train.batch_size, 1) for n in sizes]
        checkpoints = CheckpointFile(Path(results) / "trial")
        plan_of = {r: plan_round(sample_clients(cfg.seed, r, clients, per_round), costs, {}, 1)[0]
                   for r in (1, 2)}
        visited: set[int] = set()
        runs: list = []
        round_seconds, checkpoint_seconds, delta_bytes, merge_bytes, written_clients = [], [], [], [], []
        most_files, r = 0, 0
        setup_rss = round_rss = _rss_mib()
        while r < max_rounds and (len(visited) < clients or r < min_rounds or r % every):
            r += 1
            plan_of[r + 1] = plan_round(sample_clients(cfg.seed, r + 1, clients, per_round), costs, {}, 1)[0]
            started = time.perf_counter()
            payload = to_wire(algorithm.broadcast(global_state, server_state))
            _, (partial, _, _) = worker.train(r, plan_of[r], plan_of[r + 1], payload, cfg.train.lr)
            total = WeightedSum()
            total.merge(partial)
            share = Participation(sum(sizes[k] for k in plan_of[r]), sum(sizes))
            global_state = algorithm.server_update(global_state, server_state, total.mean(), share)
            round_seconds.append(time.perf_counter() - started)
            visited |= set(plan_of.pop(r))
            round_rss = max(round_rss, _rss_mib())
            if r % every == 0:
                started = time.perf_counter()
                _, (name, count, size) = worker.save_client_states(str(checkpoints.pieces), r)
                runs, merged = add_checkpoint(checkpoints.pieces, runs, [name] if name else [], r,
                                              cfg.logging.checkpoint_runs)
                checkpoints.save({"round": r, "global": global_state, "server": server_state, "client_runs": runs,
                                  "trial": "bench", "sinks": {}})
                checkpoint_seconds.append(time.perf_counter() - started)
                delta_bytes.append(size)
                merge_bytes.append(merged)
                written_clients.append(count)
                most_files = max(most_files, len(referenced(runs)))
                round_rss = max(round_rss, _rss_mib())
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        state_mib = sum(t.numel() * t.element_size() for t in worker._fresh_state()["algo"].values()) / 2**20
        peak_states, held, spill_mib = worker.store.peak_resident, len(worker.store), _mib(worker.store.directory)
        worker.store.close()
        fresh = client_worker.ClientWorker(cfg, 0, 1)
        fresh.setup(initial_local, global_state)
        started = time.perf_counter()
        fresh.load_client_pieces(str(checkpoints.pieces), runs)
        resume_seconds = time.perf_counter() - started
        assert len(fresh.store) == held, (len(fresh.store), held)
        fresh.store.close()
        return {"clients": clients, "rounds": r, "visited": len(visited), "peak_rss_mib": peak_rss,
                "setup_rss_mib": setup_rss, "round_rss_mib": round_rss,
                "peak_states": peak_states, "peak_state_mib": peak_states * state_mib, "spill_mib": spill_mib,
                "clients_per_checkpoint": statistics.mean(written_clients),
                "delta_mb": statistics.mean(delta_bytes) / 1e6,
                "delta_kb_per_client": sum(delta_bytes) / max(sum(written_clients), 1) / 1e3,
                "merge_mb": statistics.mean(merge_bytes) / 1e6, "checkpoint_s": statistics.median(checkpoint_seconds),
                "round_s": statistics.median(round_seconds), "resume_files": most_files,
                "resume_s": resume_seconds, "state_mib": state_mib}
    finally:
        shutil.rmtree(results, ignore_errors=True)


def _rss_mib() -> float:
    """The process's resident set now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _mib(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.glob("*.pt")) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--min-rounds", type=int, default=30)
    parser.add_argument("--max-rounds", type=int, default=2000)
    parser.add_argument("--parallel", action="store_true", help="run the populations at once (a busy machine)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one population and print it as JSON
    args = parser.parse_args()
    largest = max(args.clients)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.per_round, largest, args.checkpoint_every, args.min_rounds,
                                 args.max_rounds)))
        return
    def command(clients: int) -> list[str]:
        return [sys.executable, __file__, "--one", str(clients), "--clients", *map(str, args.clients),
                "--per-round", str(args.per_round), "--checkpoint-every", str(args.checkpoint_every),
                "--min-rounds", str(args.min_rounds), "--max-rounds", str(args.max_rounds)]

    rows = []
    if args.parallel:  # all populations at once: each gets the same share of a busy machine
        running = [subprocess.Popen(command(n), stdout=subprocess.PIPE, text=True) for n in args.clients]
        outputs = [process.communicate()[0] for process in running]
        if any(process.returncode for process in running):
            raise SystemExit("a population's run failed")
    else:
        outputs = [subprocess.run(command(n), check=True, capture_output=True, text=True).stdout
                   for n in args.clients]
    rows = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    print(f"SCAFFOLD, FC-2 (FedPara γ 0.1, {rows[0]['state_mib']:.2f} MiB of state per client), {args.per_round} "
          f"clients a round, a checkpoint every {args.checkpoint_every} rounds; torch {torch.__version__}")
    print("| clients | rounds | visited | RSS after setup MiB | most RSS over rounds MiB | peak RSS MiB | "
          "most states in memory (MiB) | spilled MiB | "
          "clients per ckpt | delta MB per ckpt | delta kB per client | merge MB per ckpt (mean) | s per ckpt | "
          "s per round | files a resume reads | s to load all states |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['clients']:,} | {row['rounds']} | {row['visited']:,} | {row['setup_rss_mib']:.0f} | "
              f"{row['round_rss_mib']:.0f} | {row['peak_rss_mib']:.0f} | "
              f"{row['peak_states']} ({row['peak_state_mib']:.0f}) | {row['spill_mib']:.0f} | "
              f"{row['clients_per_checkpoint']:.0f} | {row['delta_mb']:.1f} | {row['delta_kb_per_client']:.0f} | "
              f"{row['merge_mb']:.1f} | {row['checkpoint_s']:.2f} | {row['round_s']:.3f} | {row['resume_files']} | "
              f"{row['resume_s']:.1f} |")


if __name__ == "__main__":
    main()
