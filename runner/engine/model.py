"""The model a trial trains, built the same way by the Driver, every worker, the bench and the probe."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models import build_model
from partitions import DATASETS
from runner.algorithms.base import Algorithm
from runner.config import TrialConfig


def trial_model(cfg: TrialConfig) -> nn.Module:
    """``cfg.model`` for ``cfg.data``'s classes and input shape (build_model ignores γ and ρ for originals)."""
    info, m = DATASETS[cfg.data.dataset], cfg.model
    return build_model(m.arch, m.parameterization, num_classes=info.num_classes, input_shape=info.input_shape,
                       gamma=m.gamma, ratio=m.ratio, tanh=m.tanh)


def initial_model(cfg: TrialConfig, algorithm: Algorithm) -> tuple[nn.Module, dict[str, Tensor], dict[str, Tensor]]:
    """The trial's model as round 1 starts it (seeded by ``cfg.seed``) and its weights split into what the
    server owns and what stays on each client (the algorithm's local names): (model, global, local)."""
    torch.manual_seed(cfg.seed)
    model = trial_model(cfg)
    local = algorithm.local_names(model)
    state = {n: t.detach().clone() for n, t in model.state_dict().items()}
    return (model, {n: t for n, t in state.items() if n not in local},
            {n: t for n, t in state.items() if n in local})
