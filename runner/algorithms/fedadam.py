"""FedAdam (Reddi et al., 2021): the server treats the mean client delta as a pseudo-gradient for Adam."""

from __future__ import annotations

import torch

from runner.algorithms.base import Algorithm


class FedAdam(Algorithm):
    name = "fedadam"

    def init_server_state(self, global_state):
        zeros = {n: torch.zeros_like(w) for n, w in global_state.items()}
        return {**{f"m.{n}": z for n, z in zeros.items()}, **{f"v.{n}": z.clone() for n, z in zeros.items()}}

    def server_update(self, global_state, server_state, mean, num_sampled, num_clients):
        c = self.cfg
        new_state = {}
        for n, w in global_state.items():
            d = mean["delta"][n]
            m = server_state[f"m.{n}"] = c.beta1 * server_state[f"m.{n}"] + (1 - c.beta1) * d
            v = server_state[f"v.{n}"] = c.beta2 * server_state[f"v.{n}"] + (1 - c.beta2) * d * d
            new_state[n] = w + c.server_lr * m / (v.sqrt() + c.tau)
        return new_state
