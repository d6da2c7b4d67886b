"""FedDyn (Acar et al., 2021): a dynamic regulariser aligns local optima with the global one.

Client k minimises L_k(θ) − ⟨g_k, θ⟩ + α/2·‖θ − θ_global‖², then updates its kept gradient
g_k ← g_k − α(θ_k − θ_global). The server keeps h ← h − α·(|S|/N)·mean(Δ) and sends
θ = θ_global + mean(Δ) − h/α.
"""

from __future__ import annotations

import torch

from runner.algorithms.base import Algorithm, global_start, local_sgd, model_delta, with_gradients, zeros_like_state


class FedDyn(Algorithm):
    name = "feddyn"

    def init_client_state(self, global_state):
        return zeros_like_state(global_state)

    def init_server_state(self, global_state):
        return zeros_like_state(global_state)

    def train_client(self, job, payload, client_state):
        alpha = self.cfg.alpha
        start = global_start(job, payload)

        def dynamic_regulariser(params):
            with torch.no_grad():
                for n, p in with_gradients(params, job.global_names):
                    p.grad.sub_(client_state[n]).add_(p - start[n], alpha=alpha)

        loss = local_sgd(job, dynamic_regulariser)
        delta = model_delta(job, start)
        for n in job.global_names:
            client_state[n] = client_state[n] - alpha * delta[n]
        return {"delta": delta}, loss

    def server_update(self, global_state, server_state, mean, num_sampled, num_clients):
        alpha, share = self.cfg.alpha, num_sampled / num_clients
        new_state = {}
        for n, w in global_state.items():
            d = mean["delta"][n]
            server_state[n] = server_state[n] - alpha * share * d
            new_state[n] = w + d - server_state[n] / alpha
        return new_state
