"""The Shakespeare next-character LSTM (LEAF's: embedding 8, two LSTM layers of 256; docs/method.md, "Models").

``nn.LSTM`` hides its gate matrices inside one fused kernel, so the cell is written out here: each layer's
input-to-hidden (4H × in) and hidden-to-hidden (4H × H) matrices are ordinary layers built by the chosen
parameterization (FedPara / low-rank / pFedPara on the gates). The embedding and the head stay original.
The hidden-to-hidden weight is composed once per sequence, not once per step. Gate layers start at
variance 1/fan_in (gain 1: they feed sigmoid and tanh, not ReLU); the input layer carries the single bias.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.architecture import Architecture
from models.factor_init import draw_normal_
from models.factorized import dense_weight
from models.parameterization import ORIGINAL, Parameterization

EMBEDDING_DIM = 8
HIDDEN_SIZE = 256
NUM_LAYERS = 2
GATE_GAIN = 1.0


class LSTMLayer(nn.Module):
    """One LSTM layer over a whole sequence: gates ``i, f, g, o`` from ``W_ih·x_t + b + W_hh·h_{t−1}``."""

    def __init__(self, gates: Parameterization, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.input_gates = gates.linear(input_size, 4 * hidden_size, bias=True, init_gain=GATE_GAIN)
        self.hidden_gates = gates.linear(hidden_size, 4 * hidden_size, bias=False, init_gain=GATE_GAIN)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` [B, L, in] → hidden states [B, L, H]."""
        from_input = self.input_gates(x)  # every step's input contribution in one matmul
        w_hh = dense_weight(self.hidden_gates)
        h = x.new_zeros(x.shape[0], self.hidden_size)
        c = torch.zeros_like(h)
        outputs = []
        for step in range(x.shape[1]):
            i, f, g, o = (from_input[:, step] + h @ w_hh.T).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class CharLSTM(nn.Module):
    """Token ids [B, L] → logits [B, vocabulary] for the character after the last position."""

    def __init__(self, num_classes: int, gates: Parameterization, linears: Parameterization = ORIGINAL) -> None:
        super().__init__()
        # N(0, 1) as nn.Embedding's default, drawn by draw_normal_ so shape-only (meta) builds stay fast.
        self.embedding = nn.Embedding.from_pretrained(draw_normal_(torch.empty(num_classes, EMBEDDING_DIM), 1.0),
                                                      freeze=False)
        sizes = [EMBEDDING_DIM] + [HIDDEN_SIZE] * NUM_LAYERS
        self.layers = nn.ModuleList(LSTMLayer(gates, sizes[k], sizes[k + 1]) for k in range(NUM_LAYERS))
        self.head = linears.head(HIDDEN_SIZE, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embedding(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x[:, -1])


ARCHITECTURE = Architecture("lstm", "text", lambda classes, shape, layers: CharLSTM(classes, gates=layers),
                            reported_on="shakespeare")  # the window length is free; the vocabulary is num_classes
