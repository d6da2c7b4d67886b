"""Everything written for GPUs, checked in one go on one GPU machine, every table into one folder.

Steps, in order of what matters most (each a fresh process under its own time limit; a step that fails
or runs out of time is recorded and the next one runs; the whole check keeps within ``--budget`` seconds):

1. ``env``: the GPU, driver, Python, torch, Ray and W&B versions.
2. ``test_gpu_trial``: ``tests/test_gpu_trial.py`` (GPU workers give the same rows with one worker or two).
3. ``quickstart``: ``sweeps/quickstart.yaml`` with GPU workers (four at 0.25 GPU), W&B offline; its rows.
4. ``gpu_sharing``: ``bench/gpu_sharing.py``, fp32 and bf16, 1/2/4/8 workers against the plain loop, and
   from its client updates per second, how long ``sweeps/fig4.yaml`` would take on this GPU.
5. ``probe_check``: ``runner.probe`` on one VGG16-FedPara and one VGG16 worker, then a real trial of each
   with four workers on the GPU while ``nvidia-smi`` samples every process's memory: the probe's planned
   memory a worker against what the workers then used.
6. ``runner_vs_plain``: ``bench/runner_vs_plain.py`` with four workers at 0.25 GPU.
7. ``probe_fig4``: ``runner.probe`` on every model of ``sweeps/fig4.yaml`` (synthetic data, 1 local epoch).

    python bench/gpu_check.py --out results/gpu-check                 # on a GPU machine, about 9 minutes
    sh dist/fedpara-offline-py3.12.sh python3 bench/gpu_check.py --out /tmp/gpu-check   # air-gapped
    python bench/gpu_check.py --device cpu --out /tmp/gpu-check-cpu   # the same path on a CPU, tiny settings

Files in ``--out``: ``summary.md`` (every step's status and time, and the tables), and one ``<step>.txt``
log per step.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

# sweeps/fig4.yaml's work, in images trained: (rounds, clients a round, images a client, local epochs), and how
# many trials have that shape (9 gammas + the original for each dataset and split).
FIG4_SHAPES = {"cifar10 iid": (200, 16, 500, 10), "cifar10 dirichlet": (200, 16, 500, 5),
               "cifar100 iid": (400, 8, 1000, 10), "cifar100 dirichlet": (400, 8, 1000, 5)}
FIG4_TRIALS_A_SHAPE = 10
VGG16_TRAIN_FLOP_AN_IMAGE = 1.9e9  # forward and backward of VGG16 on one 32x32 image
FLOP_REFERENCE = 250e12  # a third of the H200's dense bf16 peak: a rate a well-fed GPU sustains


@dataclass
class Step:
    name: str
    seconds: float
    rc: int | str
    notes: list[str] = field(default_factory=list)


class Check:
    """Runs the steps against one wall-clock budget and writes ``summary.md`` as it goes."""

    def __init__(self, out: Path, budget: float, device: str) -> None:
        self.out, self.device = out, device
        self.deadline = time.monotonic() + budget
        self.steps: list[Step] = []
        self.tables: list[str] = []
        self.work = Path(tempfile.mkdtemp(prefix="gpu-check-"))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, command: list[str], limit: float, log: Path | None = None,
            env: dict[str, str] | None = None) -> int | str:
        """One command under min(limit, what is left of the budget); its output appended to ``<name>.txt``."""
        limit = min(limit, self.left() - 5)
        log = log or self.out / f"{name}.txt"
        if limit < 15:
            with open(log, "a") as f:
                f.write(f"$ {' '.join(command)}\nskipped: {self.left():.0f} s of the budget left\n")
            return "skipped"
        with open(log, "a") as f:
            f.write(f"$ {' '.join(command)}\n")
            f.flush()
            process = subprocess.Popen(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                                       start_new_session=True)
            try:
                return process.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
                f.write(f"\n[gpu_check] killed after {limit:.0f} s\n")
                return "timeout"

    def step(self, name: str, body: Callable[[Step], object]) -> None:
        started = time.monotonic()
        record = Step(name, 0.0, "skipped")
        if self.left() < 20:
            record.notes.append("not run: the budget is spent")
        else:
            try:
                record.rc = body(record) or 0  # type: ignore[assignment]
            except Exception as error:  # a step's own analysis failing must not stop the check
                record.rc = f"error: {type(error).__name__}: {error}"
        record.seconds = time.monotonic() - started
        self.steps.append(record)
        print(f"[gpu_check] {name}: {record.rc} in {record.seconds:.0f} s", flush=True)
        self.write()

    def write(self) -> None:
        lines = ["# GPU check", "", "| step | result | seconds | notes |", "|---|---|---|---|"]
        for s in self.steps:
            lines.append(f"| {s.name} | {s.rc} | {s.seconds:.0f} | {'; '.join(s.notes)} |")
        (self.out / "summary.md").write_text("\n".join([*lines, "", *self.tables]) + "\n")


# --- the steps ------------------------------------------------------------------------------------------

def env_step(check: Check, step: Step) -> int:
    probe = textwrap.dedent("""
        import platform, sys, torch
        print("python", sys.version.split()[0], platform.machine())
        print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            print("gpu", p.name, f"{p.total_memory / 2**30:.1f} GiB", "sm", f"{p.major}.{p.minor}",
                  "multiprocessors", p.multi_processor_count)
            print("bf16 supported", torch.cuda.is_bf16_supported())
        for name in ("ray", "wandb", "numpy", "pandas", "pyarrow"):
            try:
                module = __import__(name)
                print(name, module.__version__, module.__file__)
            except Exception as error:
                print(name, "MISSING:", error)
        import runner
        print("runner", runner.__file__)
    """)
    rc = check.run("env", [PY, "-c", probe], 60)
    if shutil.which("nvidia-smi"):
        check.run("env", ["nvidia-smi"], 30)
    text = (check.out / "env.txt").read_text()
    step.notes += [line for line in text.splitlines() if line.startswith(("gpu ", "torch ", "ray ", "python "))]
    return rc if isinstance(rc, int) else 1


def test_gpu_trial_step(check: Check, step: Step) -> int | str:
    return check.run("test_gpu_trial", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                                        "tests/test_gpu_trial.py"], 150)


def rows_summary(results: Path, sweep: str) -> list[str]:
    """Per trial: rounds, final test accuracy, median seconds a round, the busiest worker's peak memory."""
    import pandas as pd

    lines = ["| trial | rounds | final test accuracy | median s/round | worker peak MiB (allocated) |",
             "|---|---|---|---|---|"]
    for path in sorted((results / sweep / "rounds").glob("*.parquet")):
        rows = pd.read_parquet(path)
        accuracy = rows["test_accuracy"].dropna()
        lines.append(f"| {path.stem} | {int(rows['round'].max())} | "
                     f"{accuracy.iloc[-1] if len(accuracy) else float('nan'):.4f} | "
                     f"{rows['round_seconds'].median():.3f} | {rows['worker_peak_mib'].max():.0f} |")
    return lines


def quickstart_step(check: Check, step: Step) -> int | str:
    results = check.work / "quickstart"
    gpu = ["resources.gpus_per_worker=0.25"] if check.device == "cuda" else []
    rc = check.run("quickstart", [PY, "-m", "runner.sweep", "sweeps/quickstart.yaml", *gpu,
                                  "--results", str(results)], 180, env={"WANDB_MODE": "offline"})
    table = rows_summary(results, "quickstart")
    check.tables += ["## Quickstart sweep, " + ("four GPU workers at 0.25 GPU" if gpu else "CPU"), "", *table, ""]
    step.notes.append(f"{len(table) - 2} trials with rows")
    wandb_runs = list((results / "quickstart" / "wandb").glob("offline-run-*"))
    step.notes.append(f"{len(wandb_runs)} offline W&B runs")
    return rc


def gpu_sharing_step(check: Check, step: Step) -> int | str:
    rows_file = check.work / "gpu_sharing.json"
    args = (["--rounds", "5"] if check.device == "cuda"
            else ["--device", "cpu", "--model", "cnn", "--workers", "1", "2", "--rounds", "4", "--clients", "8"])
    rc = check.run("gpu_sharing", [PY, "bench/gpu_sharing.py", *args, "--json", str(rows_file)], 330)
    if rows_file.exists():
        measured = json.loads(rows_file.read_text())
        check.tables += ["## Sharing one GPU (bench/gpu_sharing.py)", "", measured["table"], "",
                         *fig4_estimate(measured), ""]
    return rc


def fig4_estimate(measured: dict) -> list[str]:
    """How long sweeps/fig4.yaml would take on this GPU at the measured rate, beside the FLOP limit."""
    images_an_update = measured["images_a_client"] * measured["local_epochs"]
    lines = ["### sweeps/fig4.yaml on one such GPU", "",
             "| precision | best layout | images/s | fig4 (40 trials) at that rate | one CIFAR-10 IID trial | "
             "the same at 250 TFLOP/s |", "|---|---|---|---|---|---|"]
    total_images = sum(FIG4_TRIALS_A_SHAPE * r * c * n * e for r, c, n, e in FIG4_SHAPES.values())
    r, c, n, e = FIG4_SHAPES["cifar10 iid"]
    iid_images = r * c * n * e
    for precision in ("fp32", "bf16"):
        rows = [row for row in measured["rows"] if row["precision"] == precision]
        if not rows:
            continue
        best = max(rows, key=lambda row: row["clients"] / row["seconds"])
        images_per_s = best["clients"] / best["seconds"] * images_an_update
        lines.append(f"| {precision} | {best['layout']} | {images_per_s:,.0f} | "
                     f"{total_images / images_per_s / 3600:.1f} h | {iid_images / images_per_s / 60:.1f} min | "
                     f"{iid_images * VGG16_TRAIN_FLOP_AN_IMAGE / FLOP_REFERENCE / 60:.1f} min |")
    achieved = [row for row in measured["rows"]]
    if achieved:
        fastest = max(achieved, key=lambda row: row["clients"] / row["seconds"])
        rate = fastest["clients"] / fastest["seconds"] * images_an_update * VGG16_TRAIN_FLOP_AN_IMAGE
        lines += ["", f"Fastest layout ({fastest['precision']}, {fastest['layout']}): about {rate / 1e12:.1f} "
                      f"TFLOP/s of VGG16 training (counting 1.9 GFLOP an image, FedPara's weight composition "
                      f"not counted), {rate / FLOP_REFERENCE * 100:.0f} % of 250 TFLOP/s. fig4's images: "
                      f"{total_images / 1e6:.0f} M over 40 trials."]
    return lines


CHECK_SWEEP = """\
name: probe-check
description: One fig4-sized worker (VGG16, CIFAR-shaped synthetic data, fig4's batch and lr), probed and then run.
base:
  data: {{dataset: synthetic, partition: iid, num_clients: 16, clients_per_round: 8}}
  model: {{arch: {arch}, parameterization: fedpara, gamma: 0.1}}
  train: {{rounds: 2, local_epochs: 1, batch_size: 64, lr: 0.1, eval_every: 2}}
  algorithm: {{name: fedavg}}
  resources: {{num_workers: {workers}, cpus_per_worker: {cpus}, gpus_per_worker: {gpus}, driver_cpus: 0.25}}
  logging: {{checkpoint_every: 0, wandb: disabled}}
"""


class NvidiaSmiSampler:
    """Every compute process's GPU memory, sampled by ``nvidia-smi`` while a trial runs: the most each used."""

    def __init__(self) -> None:
        self.most: dict[int, float] = {}
        self.process: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None

    def __enter__(self) -> NvidiaSmiSampler:
        if shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits",
                 "-lms", "200"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            try:
                pid, used = (part.strip() for part in line.split(","))
                self.most[int(pid)] = max(self.most.get(int(pid), 0.0), float(used))
            except ValueError:
                continue

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()


def probe_check_step(check: Check, step: Step) -> int | str:
    """The probe's planned memory a worker against what the same model's workers used in a real trial."""
    cuda = check.device == "cuda"
    models = [("vgg16", "fedpara γ 0.1", []), ("vgg16", "original", ["model.parameterization=original",
                                                                        "model.gamma=null"])]
    if not cuda:
        models = [("cnn", "fedpara γ 0.1", [])]
    workers = 4 if cuda else 2
    lines = ["## The probe against the workers it plans for", "",
             "| model | probe: worker MiB (reserved + context) | workers: most MiB one process used (nvidia-smi) | "
             "probe ÷ workers | probe: allocated MiB | workers: peak allocated MiB (rows) |",
             "|---|---|---|---|---|---|"]
    rc: int | str = 0
    for arch, label, overrides in models:
        sweep = check.work / f"probe-check-{arch}-{len(overrides)}.yaml"
        sweep.write_text(CHECK_SWEEP.format(arch=arch, workers=workers, cpus=1 if cuda else 0.5,
                                             gpus=0.25 if cuda else 0))
        results = check.work / f"probe-check-{len(overrides)}"
        device = ["--device", "cuda"] if cuda else ["--device", "cpu"]
        rc = check.run("probe_check", [PY, "-m", "runner.probe", str(sweep), *overrides, *device,
                                       "--results", str(results)], 90)
        with NvidiaSmiSampler() as sampler:
            rc = check.run("probe_check", [PY, "-m", "runner.sweep", str(sweep), *overrides,
                                           "--results", str(results)], 120) or rc
        stored = json.loads((results / "probe-check" / "probe.json").read_text())
        measured = next(iter(stored.values()))
        planned = measured["peak_mib"] + measured["context_mib"] if cuda else measured["peak_mib"]
        import pandas as pd

        parts = [pd.read_parquet(p) for p in (results / "probe-check" / "rounds").glob("*.parquet")]
        allocated = max(part["worker_peak_mib"].max() for part in parts) if parts else float("nan")
        used = max(sampler.most.values()) if sampler.most else float("nan")
        lines.append(f"| {arch} {label} | {planned:.0f} | {used:.0f} | {planned / used:.2f} | "
                     f"{measured['growth_mib']:.0f} | {allocated:.0f} |")
        step.notes.append(f"{arch} {label}: probe {planned:.0f} MiB, workers {used:.0f} MiB")
    check.tables += [*lines, "", "Target: the probe's memory within 10 % of what the workers use.", ""]
    return rc


def runner_vs_plain_step(check: Check, step: Step) -> int | str:
    args = (["--workers", "4", "--gpus-per-worker", "0.25", "--models", "cnn", "vgg16", "--repeats", "1",
             "--rounds", "5"] if check.device == "cuda"
            else ["--workers", "2", "--models", "cnn", "--repeats", "1", "--rounds", "3", "--no-single-thread"])
    rc = check.run("runner_vs_plain", [PY, "bench/runner_vs_plain.py", *args], 150)
    text = (check.out / "runner_vs_plain.txt").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    if table:
        check.tables += ["## Runner against the plain loop (bench/runner_vs_plain.py)", "", *table, ""]
    return rc


def probe_fig4_step(check: Check, step: Step) -> int | str:
    if check.device != "cuda":
        step.notes.append("GPU only (ten VGG16 models)")
        return "skipped"
    rc = check.run("probe_fig4", [PY, "-m", "runner.probe", "sweeps/fig4.yaml", "data.dataset=synthetic",
                                  "train.local_epochs=1", "--results", str(check.work / "fig4")], 150)
    text = (check.out / "probe_fig4.txt").read_text()
    check.tables += ["## runner.probe on fig4's models (synthetic data, 1 local epoch)", "", "```",
                     *[line for line in text.splitlines() if line.startswith("  ")], "```", ""]
    return rc


STEPS: dict[str, Callable[[Check, Step], object]] = {
    "env": env_step, "test_gpu_trial": test_gpu_trial_step, "quickstart": quickstart_step,
    "gpu_sharing": gpu_sharing_step, "probe_check": probe_check_step, "runner_vs_plain": runner_vs_plain_step,
    "probe_fig4": probe_fig4_step,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gpu-check")
    parser.add_argument("--budget", type=float, default=560, help="seconds for the whole check (default 560)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the same steps with tiny settings on a machine without a GPU")
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.budget, args.device)
    print(f"[gpu_check] {platform.node()}: steps {' '.join(args.steps)}, budget {args.budget:.0f} s, "
          f"tables to {args.out}", flush=True)
    try:
        for name in args.steps:
            check.step(name, functools.partial(STEPS[name], check))
    finally:
        shutil.rmtree(check.work, ignore_errors=True)
    print((args.out / "summary.md").read_text())
    return 0 if all(s.rc == 0 for s in check.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
