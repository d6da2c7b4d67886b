"""Layers, rank rules and architectures for FedPara (ICLR 2022) and its baselines.

``build_model(arch, parameterization, ...)`` is the entry point; ``models.rank`` holds the rank rule,
``models.transfer`` what a model costs to ship, and ``python -m models.report`` prints both per model.
"""

from models.factory import ARCHITECTURES, build_model
from models.factorized import FactorizedConv2d, FactorizedLayer, FactorizedLinear, dense_weight
from models.fedpara import FedParaConv2d, FedParaLinear
from models.lowrank import LowRankConv2d, LowRankLinear
from models.parameterization import ORIGINAL, PARAMETERIZATIONS, Parameterization
from models.pfedpara import PFedParaConv2d, PFedParaLinear
from models.rank import (
    fedpara_params,
    lowrank_params,
    lowrank_rank_for_budget,
    original_params,
    pfedpara_params,
    r_max,
    r_min,
    rank_from_gamma,
    rank_from_ratio,
)
from models.transfer import (
    count_parameters,
    head_parameter_names,
    local_parameter_names,
    original_parameter_count,
    float_bytes,
    quantized_bytes,
)

__all__ = [
    "ARCHITECTURES", "PARAMETERIZATIONS", "ORIGINAL", "Parameterization", "build_model",
    "FactorizedLayer", "FactorizedLinear", "FactorizedConv2d", "dense_weight",
    "FedParaLinear", "FedParaConv2d", "LowRankLinear", "LowRankConv2d", "PFedParaLinear", "PFedParaConv2d",
    "r_min", "r_max", "rank_from_gamma", "rank_from_ratio", "lowrank_rank_for_budget",
    "original_params", "fedpara_params", "pfedpara_params", "lowrank_params",
    "local_parameter_names", "head_parameter_names", "count_parameters", "original_parameter_count",
    "float_bytes", "quantized_bytes",
]
