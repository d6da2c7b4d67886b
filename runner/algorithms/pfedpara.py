"""pFedPara: W = W1 ⊙ (W2 + 1); W1's factors are averaged like FedAvg, W2's never leave the client.

Only the global half of the factors crosses the wire, which is where the 2× saving over FedPara and the
saving over FedPer come from (FC-2 at γ 0.5 uploads 3.32× fewer bytes than FedPer on MNIST, 3.10× on FEMNIST;
docs/method.md). It needs a model whose layers have W2 factors, so it requires
``model.parameterization: pfedpara``.
"""

from models import local_parameter_names
from runner.algorithms.base import Algorithm


class PFedPara(Algorithm):
    name = "pfedpara"
    personalized = True
    requires_parameterization = "pfedpara"

    def local_names(self, model):
        return local_parameter_names(model)
