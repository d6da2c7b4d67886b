"""Each algorithm's client and server maths, checked by hand on tiny tensors (no Ray)."""

from __future__ import annotations

import functools
import math
import pickle

import pytest
import torch
from torch import nn

from models import float_bytes, quantized_bytes
from runner.algorithms import REGISTRY, LocalTraining, Participation, Upload, local_sgd, quantize
from runner.config import TrialConfig
from runner.engine.aggregation import CPU_BLOCK, WeightedSum


def build_algorithm(name: str, **settings):
    """An algorithm as a trial builds it from its config section."""
    return TrialConfig.from_dict({"algorithm": {"name": name, **settings}}).algorithm.build()


def make_job(model: nn.Module, lr: float = 0.1, epochs: int = 1) -> LocalTraining:
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    return LocalTraining(model, lambda: iter([(x[:4], y[:4]), (x[4:], y[4:])]), epochs, lr, 0.0, 0.0,
                         tuple(model.state_dict()), torch.Generator().manual_seed(1))


def linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def payload_of(model: nn.Module) -> dict:
    return {"weights": {n: t.clone() for n, t in model.state_dict().items()}}


def test_fedavg_delta_is_trained_minus_start_and_server_adds_the_mean():
    algo = build_algorithm("fedavg")
    model = linear()
    payload = payload_of(model)
    update, loss = algo.train_client(make_job(model), payload, {})
    trained = model.state_dict()
    for n, d in update["delta"].items():
        assert torch.allclose(d, trained[n] - payload["weights"][n])
        assert d.abs().sum() > 0
    assert loss > 0
    mean = {"delta": {n: torch.ones_like(t) for n, t in payload["weights"].items()}}
    new = algo.server_update(payload["weights"], {}, mean, Participation(4, 10))
    assert all(torch.allclose(new[n], payload["weights"][n] + 1) for n in new)


def test_fedprox_with_mu_zero_equals_fedavg_and_large_mu_stays_closer():
    deltas = {}
    for name, mu in (("fedavg", 0.0), ("fedprox", 0.0), ("fedprox", 10.0)):
        algo = build_algorithm(name, **({"mu": mu} if name == "fedprox" else {}))
        model = linear()
        update, _ = algo.train_client(make_job(model, epochs=3), payload_of(model), {})
        deltas[(name, mu)] = torch.cat([d.flatten() for d in update["delta"].values()])
    assert torch.allclose(deltas[("fedavg", 0.0)], deltas[("fedprox", 0.0)])
    assert deltas[("fedprox", 10.0)].norm() < deltas[("fedavg", 0.0)].norm()


def test_scaffold_control_variate_follows_option_two():
    algo = build_algorithm("scaffold")
    model = linear()
    weights = payload_of(model)["weights"]
    server_c = {n: torch.full_like(t, 0.01) for n, t in weights.items()}
    client_c = algo.init_client_state(weights)
    before = {n: t.clone() for n, t in client_c.items()}
    update, _ = algo.train_client(make_job(model, lr=0.1), {"weights": weights, "control": server_c}, client_c)
    steps = 2
    for n in weights:
        expected = before[n] - server_c[n] - update["delta"][n] / (steps * 0.1)
        assert torch.allclose(client_c[n], expected, atol=1e-6)
        assert torch.allclose(update["control"][n], expected - before[n], atol=1e-6)
    server_state = {n: torch.zeros_like(t) for n, t in weights.items()}
    algo.server_update(weights, server_state, update, Participation(40, 100))
    assert all(torch.allclose(server_state[n], 0.4 * update["control"][n]) for n in weights)
    assert algo.bytes_down([10, 5]) == algo.bytes_up([10, 5], Upload()) == 2 * 4 * 15
    quantized = math.ceil((32 + 60) / 8) + math.ceil((32 + 30) / 8)  # 10 and 5 elements at 6 bits, a norm each
    assert algo.bytes_up([10, 5], Upload(quantize_levels=16)) == 2 * quantized


def test_feddyn_server_and_client_corrections():
    algo = build_algorithm("feddyn", alpha=0.5)
    model = linear()
    weights = payload_of(model)["weights"]
    grad_state = algo.init_client_state(weights)
    update, _ = algo.train_client(make_job(model), {"weights": weights}, grad_state)
    for n in weights:
        assert torch.allclose(grad_state[n], -0.5 * update["delta"][n])
    h = algo.init_server_state(weights)
    mean = {"delta": {n: torch.ones_like(t) for n, t in weights.items()}}
    new = algo.server_update(weights, h, mean, Participation(50, 250))  # the round's clients: 1/5 of the samples
    for n in weights:  # h = -α·(50/250)·1 = -0.1 ; θ = θ + 1 - h/α = θ + 1.2
        assert torch.allclose(h[n], torch.full_like(h[n], -0.1))
        assert torch.allclose(new[n], weights[n] + 1.2)
    reported = algo.evaluated_model(new, h)  # the average of the round's client models: θ + mean Δ
    assert all(torch.allclose(reported[n], weights[n] + 1) for n in weights)


def test_fedadam_first_step_matches_hand_computation():
    algo = build_algorithm("fedadam", server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    w = {"w": torch.tensor([1.0, 2.0])}
    state = algo.init_server_state(w)
    new = algo.server_update(w, state, {"delta": {"w": torch.tensor([0.5, -0.2])}}, Participation(1, 1))
    m = 0.1 * torch.tensor([0.5, -0.2])
    v = 0.01 * torch.tensor([0.25, 0.04])
    assert torch.allclose(new["w"], w["w"] + 0.1 * m / (v.sqrt() + 1e-3))


def test_quantized_upload_is_unbiased_and_uses_levels():
    v = torch.tensor([0.3, -0.1, 0.05, 0.0, 0.9])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([quantize(v, 4, g) for _ in range(4000)])
    assert torch.allclose(draws.mean(0), v, atol=0.01)
    levels = draws / v.norm() * 4
    assert torch.allclose(levels, levels.round(), atol=1e-5)
    assert set(levels.abs().round().unique().tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_cost_formulas_by_hand():
    assert float_bytes([10, 5]) == 60
    # 16 levels: 1 sign bit + ceil(log2 17) = 5 level bits = 6 bits per element, plus a 32-bit norm per tensor
    assert quantized_bytes([10, 3], 16) == math.ceil((32 + 60) / 8) + math.ceil((32 + 18) / 8) == 12 + 7
    fedpaq = build_algorithm("fedavg")  # FedPAQ: FedAvg whose upload is quantized
    assert fedpaq.bytes_up([10, 3], Upload(quantize_levels=16)) == 19
    assert fedpaq.bytes_down([10, 3]) == 52


def test_local_only_keeps_everything_and_sends_nothing():
    algo = build_algorithm("local")
    model = linear()
    assert algo.local_names(model) == set(model.state_dict())
    assert algo.bytes_down([]) == algo.bytes_up([], Upload()) == 0


def test_the_training_loop_reports_its_steps_and_mean_loss():
    model = linear()
    result = local_sgd(make_job(model, epochs=3))
    assert result.steps == 3 * 2  # two batches an epoch
    assert result.loss > 0


def test_the_mean_loss_is_the_float64_sum_of_each_step_s_fp32_loss_to_the_last_bit():
    """What the loop summed before it kept the sum on the device: Python floats of loss.item() x batch size."""
    model, reference = linear(), linear()
    job = make_job(reference, epochs=3)
    optimizer = torch.optim.SGD(reference.parameters(), lr=job.lr)
    total, count = 0.0, 0
    for _ in range(job.epochs):
        for inputs, labels in job.batches():
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(reference(inputs), labels)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            count += len(labels)
    assert local_sgd(make_job(model, epochs=3)).loss == total / count
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))


def test_a_client_on_an_accelerator_reads_its_loss_once_not_every_step(monkeypatch):
    """On a GPU the loss stays on the device until the client ends (here: the device path forced on a CPU)."""
    from runner.algorithms import training

    monkeypatch.setattr(training, "LossSum", functools.partial(training.LossSum, on_device=True))
    reads = []
    for method in ("item", "tolist", "__float__", "__int__"):
        original = getattr(torch.Tensor, method)

        def counted(self, *args, _original=original, _method=method):
            reads.append(_method)
            return _original(self, *args)
        monkeypatch.setattr(torch.Tensor, method, counted)
    result = local_sgd(make_job(linear(), epochs=4))
    monkeypatch.undo()
    assert result.steps == 8
    assert reads == ["item"]


def test_the_loss_sum_is_the_same_float64_on_the_host_and_on_the_device():
    from runner.algorithms.training import LossSum

    generator = torch.Generator().manual_seed(0)
    sizes = torch.randint(1, 64, (50,), generator=generator)
    losses = [(torch.rand((), generator=generator) * 3, int(n)) for n in sizes]
    host, device = LossSum(torch.device("cpu")), LossSum(torch.device("cpu"), on_device=True)
    for loss, n in losses:
        host.add(loss, n)
        device.add(loss, n)
    reference = 0.0  # the loop's sum before it had a device path: Python floats, left to right
    for loss, n in losses:
        reference += loss.item() * n
    assert host.device_total is None and device.device_total is not None
    assert host.total() == device.total() == reference


def test_bf16_autocasts_the_forward_pass_and_keeps_fp32_weights():
    torch.manual_seed(0)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    seen = []

    def models():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
        model[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
        return model

    def train(precision: str) -> tuple[nn.Module, float]:
        model = models()
        job = LocalTraining(model, lambda: iter([(x[:32], y[:32]), (x[32:], y[32:])]), 5, 0.1, 0.0, 0.0,
                            tuple(model.state_dict()), torch.Generator().manual_seed(1), precision)
        return model, local_sgd(job).loss

    fp32, fp32_loss = train("fp32")
    assert set(seen) == {torch.float32}
    seen.clear()
    bf16, bf16_loss = train("bf16")
    assert set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    assert bf16_loss != fp32_loss and abs(bf16_loss - fp32_loss) < 0.02 * fp32_loss
    assert not torch.equal(bf16[0].weight, fp32[0].weight)
    assert torch.allclose(bf16[0].weight, fp32[0].weight, atol=0.01)


def test_quantized_upload_draws_with_the_client_generator_and_leaves_full_precision_alone():
    update = {"delta": {"w": torch.randn(50)}, "control": {"w": torch.randn(50)}}
    assert Upload().apply(update, torch.Generator().manual_seed(0)) is update
    one = Upload(quantize_levels=4).apply(update, torch.Generator().manual_seed(0))
    two = Upload(quantize_levels=4).apply(update, torch.Generator().manual_seed(0))
    for kind in update:  # every entry of the update is quantized, reproducibly
        assert torch.equal(one[kind]["w"], two[kind]["w"])
        levels = one[kind]["w"] / update[kind]["w"].norm() * 4
        assert torch.allclose(levels, levels.round(), atol=1e-5)


def test_every_algorithm_declares_what_it_is():
    assert set(REGISTRY) == {"fedavg", "fedprox", "scaffold", "feddyn", "fedadam", "fedper", "pfedpara", "local"}
    assert {n for n, a in REGISTRY.items() if a.personalized} == {"fedper", "pfedpara", "local"}
    scaffold = REGISTRY["scaffold"]
    assert (scaffold.sent_down, scaffold.sent_up) == (("weights", "control"), ("delta", "control"))
    assert (REGISTRY["fedavg"].sent_down, REGISTRY["fedavg"].sent_up) == (("weights",), ("delta",))
    assert REGISTRY["pfedpara"].requires_parameterization == "pfedpara"


def test_weighted_sum_is_independent_of_grouping_and_order():
    torch.manual_seed(0)
    scales = [1e-12, 1e3, 1e-6, 1.0, 1e-9, 10.0]  # magnitudes far apart, where plain float sums disagree
    big = (3, CPU_BLOCK // 2 + 5)  # spans two blocks and a ragged third: the blockwise loop's edges
    updates = [({"delta": {"w": torch.randn(2000) * s, "b": torch.randn(3) * s},
                 "control": {"w": torch.randn(big) * s}}, float(n), 0.1 * i)
               for i, (s, n) in enumerate(zip(scales, [5, 17, 3, 40, 8, 11]))]

    def grouped(groups: list[list[int]]) -> WeightedSum:
        partials = []
        for group in groups:
            partial = WeightedSum()
            for k in group:
                partial.add(updates[k][1], updates[k][0], updates[k][2])
            partials.append(partial)
        total = WeightedSum()
        for partial in partials:  # what the driver does, in whatever order the workers finish
            total.merge(pickle.loads(pickle.dumps(partial)))
        return total

    one = grouped([[0, 1, 2, 3, 4, 5]])
    two = grouped([[0, 2, 4], [1, 3, 5]])
    three = grouped([[5, 3], [1], [4, 2, 0]])
    assert torch.equal(grouped([[1, 3, 5], [0, 2, 4]]).mean()["delta"]["w"], two.mean()["delta"]["w"])
    exact = sum(n * u["delta"]["w"].double() for u, n, _ in updates) / 84
    assert torch.allclose(one.mean()["delta"]["w"].double(), exact, rtol=1e-6)
    assert torch.equal(one.mean()["delta"]["w"], two.mean()["delta"]["w"])
    assert torch.equal(one.mean()["delta"]["w"], three.mean()["delta"]["w"])
    for kind, name in [("delta", "b"), ("control", "w")]:
        exact = sum(n * u[kind][name].double() for u, n, _ in updates) / 84
        assert one.mean()[kind][name].shape == exact.shape
        assert torch.allclose(one.mean()[kind][name].double(), exact, rtol=1e-6)
        assert torch.equal(one.mean()[kind][name], two.mean()[kind][name])
        assert torch.equal(one.mean()[kind][name], three.mean()[kind][name])
    assert one.mean_loss == two.mean_loss == three.mean_loss == pytest.approx(
        sum(n * loss for _, n, loss in updates) / 84)
    naive = [sum((updates[k][1] * updates[k][0]["delta"]["w"].double() for k in order), torch.zeros(2000))
             for order in ([0, 1, 2, 3, 4, 5], [5, 3, 1, 4, 2, 0])]
    assert not torch.equal(naive[0], naive[1])  # the case is hard: plain float64 sums depend on order
