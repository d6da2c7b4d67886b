"""SCAFFOLD (Karimireddy et al., 2020): control variates correct client drift.

Each client keeps its control variate c_k across rounds; the server keeps c. Local steps use the
gradient g + c − c_k; afterwards c_k⁺ = c_k − c + (θ_start − θ_end) / (K·lr), K the local steps taken
(option II of the paper). The server moves θ by the mean delta and keeps c the average of all clients' c_k,
weighted by their samples as the model is (runner/algorithms/base.py): c ← c + (n_S/n)·mean_S(c_k⁺ − c_k).
Control variates travel with the weights, so both directions cost twice a plain model.
"""

from __future__ import annotations

import torch

from runner.algorithms.base import Algorithm, global_start, model_delta, with_gradients, zeros_like_state
from runner.algorithms.training import local_sgd


class Scaffold(Algorithm):
    name = "scaffold"
    sent_down = ("weights", "control")
    sent_up = ("delta", "control")

    def init_client_state(self, global_state):
        return zeros_like_state(global_state)

    def init_server_state(self, global_state):
        return zeros_like_state(global_state)

    def broadcast(self, global_state, server_state):
        return {"weights": global_state, "control": server_state}

    def train_client(self, job, payload, client_state):
        start = global_start(job, payload)
        server_c = payload["control"]
        drift = {n: server_c[n] - client_state[n] for n in job.global_names}

        def correct_drift(params):
            with torch.no_grad():
                for n, _, grad in with_gradients(params, drift):
                    grad.add_(drift[n])

        result = local_sgd(job, correct_drift)
        delta = model_delta(job, start)
        control_delta = {}
        for n in job.global_names:
            new_c = client_state[n] - server_c[n] - delta[n] / (max(result.steps, 1) * job.lr)
            control_delta[n] = new_c - client_state[n]
            client_state[n] = new_c
        return {"delta": delta, "control": control_delta}, result.loss

    def server_update(self, global_state, server_state, mean, participation):
        for n in server_state:
            server_state[n] = server_state[n] + participation.share * mean["control"][n]
        return super().server_update(global_state, server_state, mean, participation)
