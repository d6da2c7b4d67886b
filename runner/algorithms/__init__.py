"""FL algorithms, each one small class behind :class:`runner.algorithms.base.Algorithm`.

``REGISTRY`` is the one list of algorithms: the config reads names, settings and requirements from it.
"""

from runner.algorithms.base import Algorithm, Participation
from runner.algorithms.fedadam import FedAdam
from runner.algorithms.fedavg import FedAvg
from runner.algorithms.feddyn import FedDyn
from runner.algorithms.fedper import FedPer
from runner.algorithms.fedprox import FedProx
from runner.algorithms.local import LocalOnly
from runner.algorithms.pfedpara import PFedPara
from runner.algorithms.scaffold import Scaffold
from runner.algorithms.settings import NoSettings
from runner.algorithms.training import LocalResult, LocalTraining, forward_precision, local_sgd
from runner.algorithms.upload import Upload, quantize

REGISTRY: dict[str, type[Algorithm]] = {
    cls.name: cls for cls in (FedAvg, FedProx, Scaffold, FedDyn, FedAdam, FedPer, PFedPara, LocalOnly)
}

__all__ = [
    "REGISTRY",
    "Algorithm",
    "LocalResult",
    "LocalTraining",
    "NoSettings",
    "Participation",
    "Upload",
    "forward_precision",
    "local_sgd",
    "quantize",
]
