"""FedProx (Li et al., 2020): a proximal term μ/2·‖θ − θ_global‖² keeps clients near the global model."""

from __future__ import annotations

import torch

from runner.algorithms.base import Algorithm, with_gradients


class FedProx(Algorithm):
    name = "fedprox"

    def gradient_correction(self, job, payload, client_state, start):
        mu = self.cfg.mu
        names = job.global_names

        def add_proximal_gradient(params):
            with torch.no_grad():
                for n, p in with_gradients(params, names):
                    p.grad.add_(p - start[n], alpha=mu)

        return add_proximal_gradient
