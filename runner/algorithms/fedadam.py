"""FedAdam (Reddi et al., 2021): the server treats the mean client delta as a pseudo-gradient for Adam."""

from __future__ import annotations


from runner.algorithms.base import Algorithm, zeros_like_state


class FedAdam(Algorithm):
    name = "fedadam"

    def init_server_state(self, global_state):
        first, second = zeros_like_state(global_state), zeros_like_state(global_state)
        return {**{f"m.{n}": z for n, z in first.items()}, **{f"v.{n}": z for n, z in second.items()}}

    def server_update(self, global_state, server_state, mean, num_sampled, num_clients):
        c = self.cfg
        new_state = {}
        for n, w in global_state.items():
            d = mean["delta"][n]
            m = server_state[f"m.{n}"] = c.beta1 * server_state[f"m.{n}"] + (1 - c.beta1) * d
            v = server_state[f"v.{n}"] = c.beta2 * server_state[f"v.{n}"] + (1 - c.beta2) * d * d
            new_state[n] = w + c.server_lr * m / (v.sqrt() + c.tau)
        return new_state
