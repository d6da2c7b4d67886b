"""Layers, rank rules and architectures for FedPara (ICLR 2022) and its baselines.

``build_model(arch, parameterization, ...)`` is the entry point, ``ARCHITECTURES`` (``models.registry``) the
one list of architectures; ``models.rank`` holds the rank rule,
``models.transfer`` what a model costs to ship, and ``python -m models.report`` prints both per model.
"""

from models.architecture import Architecture
from models.factorized import FactorizedConv2d, FactorizedLayer, FactorizedLinear, dense_weight
from models.factory import build_model
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
from models.registry import ARCHITECTURES
from models.transfer import (
    count_parameters,
    float_bytes,
    head_parameter_names,
    local_parameter_names,
    original_parameter_count,
    quantized_bytes,
)

__all__ = [
    "ARCHITECTURES",
    "ORIGINAL",
    "PARAMETERIZATIONS",
    "Architecture",
    "FactorizedConv2d",
    "FactorizedLayer",
    "FactorizedLinear",
    "FedParaConv2d",
    "FedParaLinear",
    "LowRankConv2d",
    "LowRankLinear",
    "PFedParaConv2d",
    "PFedParaLinear",
    "Parameterization",
    "build_model",
    "count_parameters",
    "dense_weight",
    "fedpara_params",
    "float_bytes",
    "head_parameter_names",
    "local_parameter_names",
    "lowrank_params",
    "lowrank_rank_for_budget",
    "original_parameter_count",
    "original_params",
    "pfedpara_params",
    "quantized_bytes",
    "r_max",
    "r_min",
    "rank_from_gamma",
    "rank_from_ratio",
]
