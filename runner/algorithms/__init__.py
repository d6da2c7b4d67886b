"""FL algorithms, each one small class behind :class:`runner.algorithms.base.Algorithm`."""

from runner.algorithms.base import Algorithm, LocalTraining, local_sgd
from runner.algorithms.fedadam import FedAdam
from runner.algorithms.fedavg import FedAvg
from runner.algorithms.feddyn import FedDyn
from runner.algorithms.fedpaq import FedPAQ, quantise
from runner.algorithms.fedper import FedPer
from runner.algorithms.fedprox import FedProx
from runner.algorithms.local import LocalOnly
from runner.algorithms.pfedpara import PFedPara
from runner.algorithms.scaffold import Scaffold
from runner.config import AlgorithmConfig

REGISTRY: dict[str, type[Algorithm]] = {
    cls.name: cls for cls in (FedAvg, FedProx, Scaffold, FedDyn, FedAdam, FedPAQ, FedPer, PFedPara, LocalOnly)
}


def build_algorithm(cfg: AlgorithmConfig) -> Algorithm:
    return REGISTRY[cfg.name](cfg)


__all__ = ["Algorithm", "LocalTraining", "local_sgd", "quantise", "build_algorithm", "REGISTRY"]
