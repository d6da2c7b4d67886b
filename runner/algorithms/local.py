"""Local-only training: every client trains its own model and nothing is communicated (Fig. 5's floor)."""

from runner.algorithms.base import Algorithm


class LocalOnly(Algorithm):
    name = "local"
    personalized = True

    def local_names(self, model):
        return set(model.state_dict())
