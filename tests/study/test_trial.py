"""Whole trials on local Ray with synthetic data: rows, bytes, W&B files, determinism, resume, worker death."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import ray
import torch
import wandb_records
from small_trial import Crash, crash_after, metrics, small

from models import head_parameter_names, local_parameter_names
from runner.config import TrialConfig
from runner.engine.model import trial_model
from runner.engine.planning import plan_round
from runner.engine.seeding import sample_clients
from runner.provenance import CodeVersion
from runner.study.results import load_rounds
from runner.study.summary import summarize
from runner.study.sweep_context import SweepContext
from runner.study.trial import run_trial
from runner.study.wandb_access import WandbAccess

pytestmark = pytest.mark.usefixtures("ray_session")


def global_floats(cfg: TrialConfig) -> int:
    model = trial_model(cfg)
    local = set()
    if cfg.algorithm.name == "local":
        return 0
    if cfg.algorithm.name == "pfedpara":
        local = local_parameter_names(model)
    elif cfg.algorithm.name == "fedper":
        local = head_parameter_names(model)
    return sum(t.numel() for n, t in model.state_dict().items() if n not in local)


def test_trial_writes_parquet_and_an_offline_wandb_run(tmp_path):
    cfg = small(tmp_path, logging={"wandb": "offline"}, sweep="unit")
    code = CodeVersion("0123abcd", True)  # what the sweep process read, handed to the trial
    rows = run_trial(cfg, context=SweepContext(WandbAccess("offline", "test"), code))
    assert list(rows["round"]) == [1, 2, 3]
    on_disk = load_rounds(tmp_path)
    pd.testing.assert_frame_equal(on_disk, rows)
    assert rows["test_accuracy"].between(0, 1).all() and rows["train_loss"].gt(0).all()
    assert rows["lr"].tolist() == pytest.approx([0.05, 0.05 * 0.992, 0.05 * 0.992 ** 2])
    assert (rows["cumulative_bytes"].diff().dropna() > 0).all()
    assert rows["model.gamma"].iloc[0] == 0.5 and rows["data.dataset"].iloc[0] == "synthetic"
    assert 0 < rows["param_ratio"].iloc[0] < 1
    assert rows["worker_peak_mib"].between(100, 64_000).all()  # a worker process holding torch and the data
    assert ((rows["worker_seconds"] > 0) & (rows["worker_seconds"] < rows["round_seconds"])).all()
    assert json.loads((tmp_path / "trials" / cfg.trial_name / "config.json").read_text())["seed"] == 3
    versions = {"code_commit": "0123abcd", "code_dirty": True, "torch_version": str(torch.__version__),
                "ray_version": ray.__version__, "runner_version": rows["runner_version"].iloc[0]}
    assert rows[list(versions)].drop_duplicates().to_dict("records") == [versions]

    run_files = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    logged = wandb_records.history(run_files[0])
    assert [r["_step"] for r in logged] == [1, 2, 3] and [r["round"] for r in logged] == [1, 2, 3]
    assert [r["test_accuracy"] for r in logged] == pytest.approx(rows["test_accuracy"].tolist())
    assert [r["cumulative_bytes"] for r in logged] == rows["cumulative_bytes"].tolist()
    assert [r["cumulative_gb"] for r in logged] == pytest.approx((rows["cumulative_bytes"] / 1e9).tolist())
    assert [r["by_gb/test_accuracy"] for r in logged] == pytest.approx(rows["test_accuracy"].tolist())
    declared = wandb_records.metrics(run_files[0])  # accuracy against rounds and against cumulative GB
    assert (declared["round"], declared["cumulative_gb"]) == ("", "")
    assert (declared["test_accuracy"], declared["by_gb/test_accuracy"]) == ("round", "cumulative_gb")

    summary = wandb_records.summary(run_files[0])
    final = rows["test_accuracy"].tail(5).mean()  # the README's definition: mean of the last 5 evaluated rounds
    assert summary["final_test_accuracy"] == pytest.approx(final) != pytest.approx(rows["test_accuracy"].iloc[-1])
    assert summarize(rows)["final_accuracy"].tolist() == pytest.approx([final])  # tables and Figure 4 agree
    assert summary["param_ratio"] == pytest.approx(rows["param_ratio"].iloc[0])
    assert summary["total_gb"] == pytest.approx(rows["cumulative_bytes"].iloc[-1] / 1e9)
    config = wandb_records.config(run_files[0])
    assert config["model.gamma"] == 0.5 and config["algorithm.name"] == "fedavg"
    assert {k: config[k] for k in versions} == versions
    info = wandb_records.run_info(run_files[0])
    assert (info.display_name, info.run_group, info.project) == (cfg.trial_name, "unit", "fedpara")


def test_a_resumed_trial_continues_its_wandb_run_from_a_file_uri(tmp_path):
    """Results under a file:// URI: the checkpoint is read back through it, and the resumed trial logs into
    the run it started (tests/study/test_wandb_run.py: a fresh trial never does)."""
    cfg = small(tmp_path, logging={"results_dir": f"file://{tmp_path}/a", "wandb": "offline"}, sweep="unit")

    with pytest.raises(Crash):
        run_trial(cfg, report=crash_after(2))
    resumed = run_trial(cfg)  # from the checkpoint of round 1
    assert list(resumed["round"]) == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "a" / "trials" / cfg.trial_name).iterdir()) == [
        "checkpoint-000002.pt", "checkpoint-000002.pt.sha256", "checkpoint-000003.pt", "checkpoint-000003.pt.sha256",
        "config.json", "wandb_run_id"]  # the newest checkpoint and the one before it, each with its checksum
    pd.testing.assert_frame_equal(load_rounds(tmp_path / "a"), resumed)
    runs = sorted((tmp_path / "a" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2 and len({wandb_records.run_info(f).run_id for f in runs}) == 1
    assert [r["_step"] for r in wandb_records.history(runs[-1])] == [2, 3]
    assert (tmp_path / "a" / "trials" / cfg.trial_name / "wandb_run_id").read_text() == \
        wandb_records.run_info(runs[0]).run_id


@pytest.mark.parametrize("algorithm, parameterization", [
    ("fedavg", "fedpara"), ("pfedpara", "pfedpara"), ("fedper", "original"), ("fedavg+q16", "fedpara"),
    ("scaffold", "fedpara"), ("local", "original")])
def test_bytes_per_round_match_hand_computation(tmp_path, algorithm, parameterization):
    knob = {"gamma": None} if parameterization == "original" else {"gamma": 0.3}
    name, _, quantized = algorithm.partition("+q")
    cfg = small(tmp_path, algorithm={"name": name}, upload={"quantize_levels": int(quantized) if quantized else None},
                model={"parameterization": parameterization, **knob}, train={"rounds": 2, "eval_every": 2})
    rows = run_trial(cfg)
    m, floats = cfg.data.clients_per_round, global_floats(cfg)
    model = trial_model(cfg)
    if quantized:  # FedPAQ
        per_element_bits = 1 + math.ceil(math.log2(17))
        up = sum(math.ceil((32 + t.numel() * per_element_bits) / 8) for t in model.state_dict().values())
        expected = (m * 4 * floats, m * up)
    elif algorithm == "scaffold":
        expected = (2 * m * 4 * floats, 2 * m * 4 * floats)
    elif algorithm == "local":
        expected = (0, 0)
    else:
        expected = (m * 4 * floats, m * 4 * floats)
    assert (rows["bytes_down"].iloc[0], rows["bytes_up"].iloc[0]) == expected
    assert rows["cumulative_bytes"].iloc[-1] == 2 * sum(expected)
    assert rows["params_sent"].iloc[0] == floats
    if algorithm == "pfedpara":  # only W1's factors (and biases/norms) travel
        assert floats == sum(t.numel() for n, t in model.state_dict().items() if n not in local_parameter_names(model))
        assert 0 < floats < sum(t.numel() for t in model.state_dict().values())
    assert not math.isnan(rows["test_accuracy"].iloc[-1]) and math.isnan(rows["test_accuracy"].iloc[0])


def test_scarce_local_data_trains_each_client_on_a_fraction_and_keeps_its_test_data(tmp_path):
    from runner.engine.client_worker import ClientWorker

    sections = {"data": {"partition": "dirichlet", "num_clients": 20}, "train": {"evaluation": "personal"}}
    full = ClientWorker(small(tmp_path, **sections), 0, 1)
    scarce = ClientWorker(small(tmp_path, **{**sections, "data": {**sections["data"], "client_fraction": 0.1}}), 0, 1)
    sizes = full.client_sizes()
    assert scarce.client_sizes() == [max(1, round(0.1 * n)) for n in sizes] and sum(sizes) == 5000
    for whole, part in zip(full.clients, scarce.clients):
        assert torch.equal(whole.y_test, part.y_test) and len(part.y_test) > 0  # its own test data, whole
        assert set(part.y.tolist()) <= set(whole.y.tolist())


def moves_of_trained_clients(cfg: TrialConfig, workers: int) -> int:
    """How often the driver's plan sends a client that already has state to another worker."""
    costs = [1] * cfg.data.num_clients  # synthetic IID: equal client sizes
    holders, trained, moves = {}, set(), 0
    for r in range(1, cfg.train.rounds + 1):
        sampled = sample_clients(cfg.seed, r, cfg.data.num_clients, cfg.data.clients_per_round)
        for i, clients in enumerate(plan_round(sampled, costs, holders, workers)):
            for k in clients:
                moves += k in trained and holders.get(k, k % workers) != i
                holders[k] = i
                trained.add(k)
    return moves


def moving(algorithm: str) -> dict:
    """A trial whose clients' states move between two workers (8 clients, 5 a round, 4 rounds)."""
    sections = {"algorithm": {"name": algorithm}, "data": {"num_clients": 8, "clients_per_round": 5},
                "train": {"rounds": 4}}
    if algorithm == "pfedpara":
        sections["model"] = {"parameterization": "pfedpara"}
    return sections


@pytest.fixture(scope="module")
def one_worker(ray_session, tmp_path_factory):
    """The rows of :func:`moving`'s trial run uninterrupted on one worker, each algorithm's once: the reference
    for two workers and for a killed worker."""
    runs: dict[str, pd.DataFrame] = {}

    def rows(algorithm: str) -> pd.DataFrame:
        if algorithm not in runs:
            runs[algorithm] = run_trial(small(tmp_path_factory.mktemp(f"one-{algorithm}"), **moving(algorithm)))
        return runs[algorithm]

    return rows


@pytest.mark.parametrize("algorithm", ["scaffold", "pfedpara"])
def test_metrics_identical_with_one_or_two_workers(tmp_path, algorithm, one_worker):
    """Client states follow their clients between workers; sums are exact: the worker count changes nothing."""
    sections = moving(algorithm)
    one = one_worker(algorithm)
    two_cfg = small(tmp_path / "two", resources={"num_workers": 2, "cpus_per_worker": 0.5}, **sections)
    assert moves_of_trained_clients(two_cfg, 2) >= 2  # the case under test: states really move
    two = run_trial(two_cfg)
    pd.testing.assert_frame_equal(metrics(one), metrics(two))


def test_learning_happens_on_synthetic_data(tmp_path):
    rows = run_trial(small(tmp_path, data={"num_clients": 10, "clients_per_round": 4},
                           train={"rounds": 5, "local_epochs": 2, "lr": 0.1}))
    accuracy = rows["test_accuracy"]
    assert accuracy.iloc[-1] > 0.5, accuracy.tolist()  # 10 classes: chance is 0.1
    assert accuracy.iloc[-1] > accuracy.iloc[0] + 0.2


def test_a_bf16_trial_learns_and_its_rows_say_bf16(tmp_path):
    """The original FC-2: a CPU without native bfloat16 runs a FedPara layer's composed weight about 15x
    slower under autocast (a CNN step takes seconds); FedPara's layers under bf16 autocast are tested in
    tests/test_models_autocast.py."""
    cfg = small(tmp_path, data={"num_clients": 10, "clients_per_round": 2},
                model={"parameterization": "original", "gamma": None},
                train={"rounds": 4, "local_epochs": 1, "lr": 0.02, "precision": "bf16"})
    rows = run_trial(cfg)
    assert rows["train.precision"].tolist() == ["bf16"] * 4 and "-bf16-" in rows["trial"].iloc[0]
    accuracy = rows["test_accuracy"]
    assert accuracy.iloc[-1] > 0.5, accuracy.tolist()  # 10 classes: chance is 0.1
    assert accuracy.iloc[-1] > accuracy.iloc[0] + 0.2, accuracy.tolist()
    assert rows["train_loss"].is_monotonic_decreasing, rows["train_loss"].tolist()



def test_crashed_trial_resumes_to_the_same_rows(tmp_path):
    reference = run_trial(small(tmp_path / "ref", algorithm={"name": "feddyn"}, train={"rounds": 4},
                                logging={"checkpoint_every": 2}))

    cfg = small(tmp_path / "crash", algorithm={"name": "feddyn"}, train={"rounds": 4},
                logging={"checkpoint_every": 2})

    with pytest.raises(Crash):
        run_trial(cfg, report=crash_after(3))
    assert len(load_rounds(tmp_path / "crash")) == 3  # row 3 written, checkpoint still at round 2
    resumed = run_trial(cfg)
    assert list(resumed["round"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(metrics(resumed), metrics(reference))


def test_killed_worker_is_restarted_and_the_round_redone(tmp_path, one_worker):
    """Two workers whose clients move between them; one dies: the rows match a one-worker run's."""
    reference = one_worker("pfedpara")
    cfg = small(tmp_path / "kill", resources={"num_workers": 2, "cpus_per_worker": 0.5},
                logging={"checkpoint_every": 2}, **moving("pfedpara"))
    assert moves_of_trained_clients(cfg, 2) >= 2

    def kill_worker_after_round_three(metrics):
        if metrics["round"] == 3:  # the next call finds a fresh worker whose clients' state is gone
            ray.kill(ray.get_actor(f"{cfg.trial_name}/worker-0"), no_restart=False)

    rows = run_trial(cfg, report=kill_worker_after_round_three)
    pd.testing.assert_frame_equal(metrics(rows), metrics(reference))
