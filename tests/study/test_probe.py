"""The probe (``python -m runner.probe``): one worker of each distinct model trained for real, its memory
and speed written to ``<results>/<sweep>/probe.json``, and the sweep's dry run showing the advice per trial."""

from __future__ import annotations

import json
import math
from pathlib import Path

from runner import probe as probe_cli
from runner import sweep as sweep_cli
from runner.study import probe
from runner.study.sweep_expand import expand
from runner.study.sweep_file import load_sweep

SWEEP = """
name: probed
description: one model at two learning rates (one measurement), and a second model
base:
  data: {dataset: synthetic, num_clients: 8, clients_per_round: 4}
  model: {arch: fc2, parameterization: fedpara, gamma: 0.5}
  train: {rounds: 1, batch_size: 32}
  resources: {num_workers: 1, cpus_per_worker: 0.5, driver_cpus: 0.25}
grid:
  train.lr: [0.1, 0.05]
variants:
  - {model.parameterization: fedpara}
  - {model.parameterization: original, model.gamma: null}
"""


def test_probe_measures_each_model_once_on_the_cpu_and_the_dry_run_reads_it_back(tmp_path, capsys, monkeypatch):
    sweep_file = tmp_path / "probed.yaml"
    sweep_file.write_text(SWEEP)
    assert len(probe.distinct_models(expand(load_sweep(sweep_file)))) == 2  # lr changes no memory
    bf16 = expand(load_sweep(sweep_file), {"train.precision": "bf16"})
    assert len(probe.distinct_models([*expand(load_sweep(sweep_file)), *bf16])) == 4  # precision does
    assert probe.key_text(probe.model_key(bf16[0]), "cuda") == \
        "synthetic fc2-fedpara g0.5 batch 32 precision bf16 [cuda]"

    argv = [str(sweep_file), "model.parameterization=fedpara", "model.gamma=0.5", "--device", "cpu",
            "--gpu-memory", "8", "--clients", "1", "--results", str(tmp_path)]
    assert probe_cli.main(argv) == 0  # the override leaves one model
    out = capsys.readouterr().out
    assert "probe probed: 1 distinct models of 2 trials, on cpu" in out

    stored = json.loads((tmp_path / "probed" / "probe.json").read_text())
    [(key, m)] = stored.items()
    assert key == "synthetic fc2-fedpara g0.5 batch 32 [cpu]" == m["key"]
    assert m["device"] == "cpu" and m["clients_timed"] == 1 and m["updates_per_second"] > 0
    assert 0 < m["growth_mib"] < m["peak_mib"] < 8192  # the process holds torch; the trial adds its data
    assert m["growth_mib"] > 5000 * 3 * 32 * 32 / 2**20  # the whole synthetic training set is on the worker
    per_worker = m["growth_mib"] + probe.CUDA_CONTEXT_ESTIMATE_MIB
    fit = math.floor(8 * 1024 * 0.9 / per_worker)
    each = f"{per_worker / 1024:.2f} GiB each"
    assert f"{fit} workers per 8 GiB GPU fit (estimated from a CPU run {each}, 10 % margin)" in out

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert sweep_cli.main([str(sweep_file), "--dry-run", "--results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index(f"probe ({tmp_path / 'probed' / 'probe.json'}):")
    advice = lines[start + 1:start + 5]  # trials: (lr 0.1, fedpara), (lr 0.1, original), (lr 0.05, ...)
    assert advice[0].startswith(f"  1: {fit} workers per 8 GiB GPU fit (estimated from a CPU run")
    assert advice[1] == advice[3].replace("4:", "2:") == "  2: not measured (synthetic fc2-original batch 32 [cuda])"
    assert advice[2] == advice[0].replace("1:", "3:")  # the same model at another learning rate


def test_a_gpu_measurement_counts_the_cuda_context_and_judges_the_trials_share(tmp_path):
    """The numbers a GPU run stores (made up here: no GPU on this machine) and what the dry run makes of them."""
    trials = expand(load_sweep(Path(__file__).resolve().parents[2] / "sweeps" / "fig4.yaml"), {"model.gamma": 0.1})
    cifar10 = trials[0]
    key = probe.key_text(probe.model_key(cifar10), "cuda")
    measured = probe.Measurement(key, "cuda", "NVIDIA A10G", peak_mib=2900.0, growth_mib=2600.0, context_mib=300.0,
                                 updates_per_second=4.2, clients_timed=2, gpu_memory_gib=24.0, margin=0.1,
                                 estimated=False)
    assert measured.worker_mib == 3200 and measured.workers_per_gpu == math.floor(24 * 1024 * 0.9 / 3200) == 6
    probe.save(tmp_path, [measured])
    lines = probe.dry_run_lines(trials, tmp_path)
    assert lines[1] == ("  1: 6 workers per 24 GiB GPU fit (measured 3.12 GiB each, 10 % margin), 4.2 client updates/s "
                        "on NVIDIA A10G; gpus_per_worker 0.25 puts 4 on a GPU: fits")

    crowded = [t for t in expand(load_sweep(Path(__file__).resolve().parents[2] / "sweeps" / "fig4.yaml"),
                                 {"model.gamma": 0.1, "resources.gpus_per_worker": 0.1})]
    assert probe.dry_run_lines(crowded, tmp_path)[1].endswith(
        "gpus_per_worker 0.1 puts 10 on a GPU: TOO MANY, use gpus_per_worker >= 0.167")
