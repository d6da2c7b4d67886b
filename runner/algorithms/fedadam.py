"""FedAdam (Reddi et al., 2021): the server treats the mean client delta as a pseudo-gradient for Adam."""

from __future__ import annotations

from dataclasses import dataclass

from runner.algorithms.base import Algorithm, zeros_like_state
from runner.settings import setting


class FedAdam(Algorithm):
    name = "fedadam"

    @dataclass(frozen=True)
    class Settings:
        server_lr: float = setting(0.01, gt=0)
        beta1: float = setting(0.9, ge=0, lt=1)
        beta2: float = setting(0.99, ge=0, lt=1)
        tau: float = setting(1e-3, gt=0)  # adaptivity: added to √v

    def init_server_state(self, global_state):
        first, second = zeros_like_state(global_state), zeros_like_state(global_state)
        return {**{f"m.{n}": z for n, z in first.items()}, **{f"v.{n}": z for n, z in second.items()}}

    def server_update(self, global_state, server_state, mean, participation):
        c = self.settings
        new_state = {}
        for n, w in global_state.items():
            d = mean["delta"][n]
            m = server_state[f"m.{n}"] = c.beta1 * server_state[f"m.{n}"] + (1 - c.beta1) * d
            v = server_state[f"v.{n}"] = c.beta2 * server_state[f"v.{n}"] + (1 - c.beta2) * d * d
            new_state[n] = w + c.server_lr * m / (v.sqrt() + c.tau)
        return new_state
