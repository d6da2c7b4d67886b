"""Client state as the population grows: SCAFFOLD on FC-2 with 100, 1,000 and 10,000 clients.

One client worker (runner/engine/client_worker.py) in this process, driven round by round as the Driver drives
it: the same plans (this round's and next round's clients), the same server step, and every ``--checkpoint-every``
rounds the same checkpoint (each changed state in a delta piece, merges into runs, the checkpoint file; under a
local results directory). Each client trains on 2 samples for one step, so a run is dominated by what this bench
measures; the synthetic dataset has 2 training samples per client of the largest population for every run
(``data.client_fraction`` keeps 2 per client), so each run loads the same data. Rounds run until every client was
trained at least once, and at least ``--min-rounds`` (at most ``--max-rounds``). Each population runs in its own
process (peak memory is per process).

Prints, per population: rounds, clients visited, the process's anonymous resident set (what it needs; not the pages
of files it maps, which the kernel takes back) after the worker's setup and its most after any round or checkpoint,
its peak anonymous and whole resident set over the rounds and checkpoints (sampled every 2 ms, and the kernel's
high-water mark; the merges' mapped pieces count in the latter, and in a trial the driver merges, not a worker), the
most client states in memory at once and their MiB, the files on local disk, bytes a checkpoint wrote (its deltas,
and its merges on average), all bytes written per client trained (deltas and merges: at most one rewrite per level,
about log2 of the checkpoints), seconds per checkpoint (median and most: a checkpoint that merges high levels
rewrites many states) and per client it wrote, seconds per round (median), the most files a resume reads, and the
seconds a fresh worker takes to load all states back. Clients are sampled cyclically by default
(``data.client_sampling``) so that every client of the largest population is visited.

    python bench/client_state_scale.py [--clients 100 1000 10000] [--per-round 100] [--checkpoint-every 10]
                                       [--min-rounds 100] [--max-rounds 2000] [--sampling cyclic] [--gamma 0.1]
                                       [--parallel]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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
from runner.engine.seeding import SAMPLING, round_clients
from runner.engine.wire import to_wire

SAMPLES_PER_CLIENT = 2


def config(clients: int, per_round: int, largest: int, results: str, rounds: int, sampling: str,
           gamma: float | None) -> TrialConfig:
    model = {"arch": "fc2", "parameterization": "original"} if gamma is None else \
        {"arch": "fc2", "parameterization": "fedpara", "gamma": gamma}
    return TrialConfig.from_dict({
        "data": {"dataset": "synthetic", "num_clients": clients, "clients_per_round": per_round,
                 "client_fraction": clients / largest, "client_sampling": sampling},
        "model": model,
        "train": {"rounds": rounds, "local_epochs": 1, "batch_size": SAMPLES_PER_CLIENT, "lr": 0.05},
        "algorithm": {"name": "scaffold"},
        "resources": {"num_workers": 1, "cpus_per_worker": 1},
        "logging": {"results_dir": results, "checkpoint_every": 1, "wandb": "disabled"},
        "seed": 0})


def run_one(clients: int, per_round: int, largest: int, every: int, min_rounds: int,
            max_rounds: int, sampling: str, gamma: float | None) -> dict[str, Any]:
    train_samples = SAMPLES_PER_CLIENT * largest
    def bigger_synthetic(name: str, root: Any, *, download: bool = False, seed: int = 0) -> Any:
        return synthetic_images(seed, train=train_samples)

    client_worker.load_dataset = bigger_synthetic  # every client of the largest population gets samples
    results = tempfile.mkdtemp(prefix="client-state-bench-")
    try:
        cfg = config(clients, per_round, largest, results, max_rounds, sampling, gamma)

        algorithm = cfg.algorithm.build()
        _, global_state, initial_local = initial_model(cfg, algorithm)
        worker = client_worker.ClientWorker(cfg, 0, 1)
        worker.setup(initial_local, global_state)
        server_state = algorithm.init_server_state(global_state)
        sizes = worker.client_sizes()
        costs = [client_cost(n, cfg.train.batch_size, 1) for n in sizes]
        checkpoints = CheckpointFile(Path(results) / "trial")
        plan_of = {r: plan_round(round_clients(cfg, r), costs, {}, 1)[0] for r in (1, 2)}
        visited: set[int] = set()
        runs: list = []
        round_seconds, checkpoint_seconds, delta_bytes, merge_bytes, written_clients = [], [], [], [], []
        most_files, r, trained = 0, 0, 0
        setup_anon = round_anon = _rss_mib("RssAnon")
        peaks = PeakMemory()  # from here: the rounds and checkpoints, not the dataset's generation
        while r < max_rounds and (len(visited) < clients or r < min_rounds or r % every):
            r += 1
            plan_of[r + 1] = plan_round(round_clients(cfg, r + 1), costs, {}, 1)[0]
            started = time.perf_counter()
            payload = to_wire(algorithm.broadcast(global_state, server_state))
            _, (partial, _, _) = worker.train(r, plan_of[r], plan_of[r + 1], payload, cfg.train.lr)
            total = WeightedSum()
            total.merge(partial)
            share = Participation(sum(sizes[k] for k in plan_of[r]), sum(sizes))
            global_state = algorithm.server_update(global_state, server_state, total.mean(), share)
            round_seconds.append(time.perf_counter() - started)
            trained += len(plan_of[r])
            visited |= set(plan_of.pop(r))
            round_anon = max(round_anon, _rss_mib("RssAnon"))
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
                round_anon = max(round_anon, _rss_mib("RssAnon"))
        worker.store.settle()
        run_peak_rss, run_peak_anon = peaks.stop()
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
        return {"clients": clients, "rounds": r, "visited": len(visited),
                "trained": trained, "written_kb_per_trained": (sum(delta_bytes) + sum(merge_bytes)) / trained / 1e3,
                "checkpoint_s_max": max(checkpoint_seconds),
                "checkpoint_ms_per_client": 1e3 * sum(checkpoint_seconds) / max(sum(written_clients), 1),
                "setup_anon_mib": setup_anon, "round_anon_mib": round_anon,
                "run_peak_rss_mib": run_peak_rss, "run_peak_anon_mib": run_peak_anon,
                "peak_states": peak_states, "peak_state_mib": peak_states * state_mib, "spill_mib": spill_mib,
                "clients_per_checkpoint": statistics.mean(written_clients),
                "delta_mb": statistics.mean(delta_bytes) / 1e6,
                "delta_kb_per_client": sum(delta_bytes) / max(sum(written_clients), 1) / 1e3,
                "merge_mb": statistics.mean(merge_bytes) / 1e6, "checkpoint_s": statistics.median(checkpoint_seconds),
                "round_s": statistics.median(round_seconds), "resume_files": most_files,
                "resume_s": resume_seconds, "state_mib": state_mib}
    finally:
        shutil.rmtree(results, ignore_errors=True)


class PeakMemory:
    """The process's peak resident set from now on (the kernel's high-water mark, reset here), and its peak
    anonymous part (sampled every 2 ms on a thread: the kernel keeps no high-water mark of it)."""

    def __init__(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux 4.0+)
        self.anon, self.running = _rss_mib("RssAnon"), True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            self.anon = max(self.anon, _rss_mib("RssAnon"))
            time.sleep(0.002)

    def stop(self) -> tuple[float, float]:
        self.running = False
        self.thread.join()
        return _rss_mib("VmHWM"), self.anon


def _rss_mib(field: str) -> float:
    """A resident-set figure of this process now (Linux): ``RssAnon``, its anonymous part, without the pages of
    files it maps (the merged pieces it reads: page cache, which the kernel takes back when memory is short);
    ``VmHWM``, the whole resident set's high-water mark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _mib(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.glob("*.pt")) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--min-rounds", type=int, default=100)
    parser.add_argument("--max-rounds", type=int, default=2000)
    parser.add_argument("--sampling", choices=SAMPLING, default="cyclic",
                        help="data.client_sampling (cyclic: every client visited within N / per-round rounds)")
    parser.add_argument("--gamma", type=float, default=0.1,
                        help="FC-2 FedPara's γ (0.58 MiB of SCAFFOLD state a client at 0.1); 0: the original FC-2 "
                             "(0.6 M parameters, 2.35 MiB a client: 23.5 GiB of local disk at 10,000 clients)")
    parser.add_argument("--parallel", action="store_true", help="run the populations at once (a busy machine)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one population and print it as JSON
    args = parser.parse_args()
    largest, gamma = max(args.clients), args.gamma or None
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.per_round, largest, args.checkpoint_every, args.min_rounds,
                                 args.max_rounds, args.sampling, gamma)))
        return
    def command(clients: int) -> list[str]:
        return [sys.executable, __file__, "--one", str(clients), "--clients", *map(str, args.clients),
                "--per-round", str(args.per_round), "--checkpoint-every", str(args.checkpoint_every),
                "--min-rounds", str(args.min_rounds), "--max-rounds", str(args.max_rounds),
                "--sampling", args.sampling, "--gamma", str(args.gamma)]

    if args.parallel:  # all populations at once: each gets the same share of a busy machine
        running = [subprocess.Popen(command(n), stdout=subprocess.PIPE, text=True) for n in args.clients]
        outputs = [process.communicate()[0] for process in running]
        if any(process.returncode for process in running):
            raise SystemExit("a population's run failed")
    else:
        outputs = []
        for n in args.clients:  # as each finishes: a long run shows its first rows early
            outputs.append(subprocess.run(command(n), check=True, capture_output=True, text=True).stdout)
            print(f"{n:,} clients done", file=sys.stderr, flush=True)
    rows = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    model = "the original FC-2" if gamma is None else f"FC-2 FedPara γ {gamma:g}"
    print(f"SCAFFOLD, {model} ({rows[0]['state_mib']:.2f} MiB of state per client), {args.per_round} clients a "
          f"round ({args.sampling}), a checkpoint every {args.checkpoint_every} rounds; torch {torch.__version__}")
    print("| clients | rounds | visited | anonymous RSS after setup MiB | most anonymous RSS between rounds MiB | "
          "peak anonymous RSS over the run MiB | peak RSS over the run (with mapped files) MiB | "

          "most states in memory (MiB) | spilled MiB | clients per ckpt | delta MB per ckpt | delta kB per client | "
          "merge MB per ckpt (mean) | kB written per client trained | s per ckpt (median, most) | "
          "ms per client checkpointed | s per round | files a resume reads | s to load all states |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['clients']:,} | {row['rounds']} | {row['visited']:,} | {row['setup_anon_mib']:.0f} | "
              f"{row['round_anon_mib']:.0f} | {row['run_peak_anon_mib']:.0f} | {row['run_peak_rss_mib']:.0f} | "

              f"{row['peak_states']} ({row['peak_state_mib']:.0f}) | {row['spill_mib']:.0f} | "
              f"{row['clients_per_checkpoint']:.0f} | {row['delta_mb']:.1f} | {row['delta_kb_per_client']:.0f} | "
              f"{row['merge_mb']:.1f} | {row['written_kb_per_trained']:.0f} | "
              f"{row['checkpoint_s']:.2f}, {row['checkpoint_s_max']:.2f} | {row['checkpoint_ms_per_client']:.1f} | "
              f"{row['round_s']:.3f} | {row['resume_files']} | {row['resume_s']:.1f} |")


if __name__ == "__main__":
    main()
