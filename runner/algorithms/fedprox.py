"""FedProx (Li et al., 2020): a proximal term μ/2·‖θ − θ_global‖² keeps clients near the global model."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from runner.algorithms.base import Algorithm, with_gradients
from runner.settings import setting


class FedProx(Algorithm):
    name = "fedprox"

    @dataclass(frozen=True)
    class Settings:
        mu: float = setting(0.01, ge=0)  # the proximal weight μ

    def gradient_correction(self, job, payload, client_state, start):
        mu = self.settings.mu
        names = job.global_names

        def add_proximal_gradient(params):
            with torch.no_grad():
                for n, p, grad in with_gradients(params, names):
                    grad.add_(p - start[n], alpha=mu)

        return add_proximal_gradient
