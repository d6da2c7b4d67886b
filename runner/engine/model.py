"""The model a trial trains, built the same way by the Driver, every worker, the bench and the probe."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models import build_model, count_parameters, original_parameter_count
from models.budget import solve_for
from partitions import DATASETS
from runner.algorithms.base import Algorithm
from runner.config import TrialConfig
from runner.trial_identity import size_text


def trial_model(cfg: TrialConfig) -> nn.Module:
    """``cfg.model`` for ``cfg.data``'s classes and input shape (build_model ignores γ and ρ for originals)."""
    info, m = DATASETS[cfg.data.dataset], cfg.model
    return build_model(m.arch, m.parameterization, num_classes=info.num_classes, input_shape=info.input_shape,
                       gamma=m.gamma, ratio=m.ratio, param_ratio=m.param_ratio, tanh=m.tanh)


def model_size(cfg: TrialConfig) -> str:
    """The trial's model as a share of the original model's parameters, with the knob that sized it:
    ``10.14% (γ=0.1)``; a whole-model target (``model.param_ratio``) shows the γ or ρ it was solved into."""
    info, m = DATASETS[cfg.data.dataset], cfg.model
    if m.parameterization == "original":
        return "100%"
    gamma, ratio = m.gamma, m.ratio
    if m.param_ratio is not None:
        solved = solve_for(m.arch, m.parameterization, info.num_classes, tuple(info.input_shape), m.param_ratio)
        gamma, ratio = solved.gamma, solved.ratio
    with torch.device("meta"):
        model = build_model(m.arch, m.parameterization, num_classes=info.num_classes,
                            input_shape=info.input_shape, gamma=gamma, ratio=ratio)
    share = count_parameters(model) / original_parameter_count(m.arch, info.num_classes, info.input_shape)
    return f"{100 * share:.2f}% ({size_text(gamma, ratio, label=True)})"


def initial_model(cfg: TrialConfig, algorithm: Algorithm) -> tuple[nn.Module, dict[str, Tensor], dict[str, Tensor]]:
    """The trial's model as round 1 starts it (seeded by ``cfg.seed``) and its weights split into what the
    server owns and what stays on each client (the algorithm's local names): (model, global, local)."""
    torch.manual_seed(cfg.seed)
    model = trial_model(cfg)
    local = algorithm.local_names(model)
    state = {n: t.detach().clone() for n, t in model.state_dict().items()}
    return (model, {n: t for n, t in state.items() if n not in local},
            {n: t for n, t in state.items() if n in local})
