"""The model a trial trains, built the same way by the Driver, every worker, the bench and the probe."""

from __future__ import annotations

from torch import nn

from models import build_model
from partitions import DATASETS
from runner.config import TrialConfig


def trial_model(cfg: TrialConfig) -> nn.Module:
    """``cfg.model`` for ``cfg.data``'s classes and input shape (build_model ignores γ and ρ for originals)."""
    info, m = DATASETS[cfg.data.dataset], cfg.model
    return build_model(m.arch, m.parameterization, num_classes=info.num_classes, input_shape=info.input_shape,
                       gamma=m.gamma, ratio=m.ratio, tanh=m.tanh)
