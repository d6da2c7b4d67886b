"""FedPer (Arivazhagan et al., 2019): the last layer stays on each client; the rest is FedAvg."""

from models import head_parameter_names
from runner.algorithms.base import Algorithm


class FedPer(Algorithm):
    name = "fedper"
    personalized = True

    def local_names(self, model):
        return head_parameter_names(model)
