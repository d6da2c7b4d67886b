"""FedAvg (McMahan et al., 2017): the backbone every other algorithm varies."""

from runner.algorithms.base import Algorithm


class FedAvg(Algorithm):
    name = "fedavg"
