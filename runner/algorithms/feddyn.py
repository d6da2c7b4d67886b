"""FedDyn (Acar et al., 2021): a dynamic regularizer aligns local optima with the global one.

Client k minimizes L_k(θ) − ⟨g_k, θ⟩ + α/2·‖θ − θ_global‖², then updates its kept gradient
g_k ← g_k − α(θ_k − θ_global). The server keeps h the average of all clients' g_k, weighted by their samples as
the model is (runner/algorithms/base.py): h ← h − α·(n_S/n)·mean_S(Δ). It sends θ = θ_global + mean_S(Δ) − h/α,
the server model of the FedDyn paper's Algorithm 1.

The accuracy reported is that of the average of the round's client models, θ_global + mean_S(Δ) (= θ + h/α), not
of the server model θ: the FedDyn authors' code plots this average (and their convergence bound is stated for it),
so FedDyn numbers published from that code are numbers of this model. The two coincide at FedDyn's fixed point,
where the clients' gradients g_k, and so h, sum to zero; before it they differ by h/α.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from runner.algorithms.base import Algorithm, global_start, model_delta, with_gradients, zeros_like_state
from runner.algorithms.training import local_sgd
from runner.settings import setting


class FedDyn(Algorithm):
    name = "feddyn"

    @dataclass(frozen=True)
    class Settings:
        alpha: float = setting(0.01, gt=0)  # the regularizer's weight α

    def init_client_state(self, global_state):
        return zeros_like_state(global_state)

    def init_server_state(self, global_state):
        return zeros_like_state(global_state)

    def train_client(self, job, payload, client_state):
        alpha = self.settings.alpha
        start = global_start(job, payload)

        def dynamic_regularizer(params):
            with torch.no_grad():
                for n, p, grad in with_gradients(params, job.global_names):
                    grad.sub_(client_state[n]).add_(p - start[n], alpha=alpha)

        result = local_sgd(job, dynamic_regularizer)
        delta = model_delta(job, start)
        for n in job.global_names:
            client_state[n] = client_state[n] - alpha * delta[n]
        return {"delta": delta}, result.loss

    def server_update(self, global_state, server_state, mean, participation):
        alpha, share = self.settings.alpha, participation.share
        new_state = {}
        for n, w in global_state.items():
            d = mean["delta"][n]
            server_state[n] = server_state[n] - alpha * share * d
            new_state[n] = w + d - server_state[n] / alpha
        return new_state

    def evaluated_model(self, global_state, server_state):
        """The average of the round's client models, θ + h/α (see the module's docstring)."""
        return {n: w + server_state[n] / self.settings.alpha for n, w in global_state.items()}
